"""Stage 13: specialists over confusable pdfs beside a generalist, and how they fare.

train-specialists writes EXP_DIR/final.pt (the generalist, the specialists, their clusters: a
model that decodes and distills like any other), clusters.json, history.json and
epoch-N.pt checkpoints. score-specialists breaks a decoded test set's frame accuracy down by
how many active specialists cover the correct pdf (the shape of the paper's Table 4) into
DECODE_DIR/coverage.json.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from asr_kd.acoustic import DnnAcousticModel, SpecialistAcousticModel, load_acoustic_model
from asr_kd.features import as_tensors
from asr_kd.steps.common import load_dir_feats, read_alignments
from asr_kd.train.specialists import SpecialistConfig, train_specialists
from asr_kd.utils.config import save_config, to_dict
from asr_kd.utils.io import clear_done, mark_done, write_json
from asr_kd.utils.progress import progress
from asr_kd.utils.runinfo import write_run

log = logging.getLogger(__name__)


def run_train_specialists(data_dir, ali_dir, generalist_path, exp_dir, cfg: SpecialistConfig,
                          device) -> None:
    exp_dir = Path(exp_dir)
    clear_done(exp_dir)
    # Soft targets cached from earlier specialists would no longer be these ones'.
    shutil.rmtree(exp_dir / "soft_targets", ignore_errors=True)
    d, feats = load_dir_feats(data_dir)
    targets = read_alignments(ali_dir, d, feats)
    generalist = load_acoustic_model(generalist_path, device)
    if type(generalist) is not DnnAcousticModel:
        raise ValueError(f"{generalist_path}: the generalist must be one DNN (e.g. "
                         f"exp/teacher_1/final.pt), not a {type(generalist).__name__}")
    exp_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, exp_dir / "config.yaml")
    model, history = train_specialists(cfg, feats, targets, generalist, exp_dir, device)
    model.save(exp_dir / "final.pt", next(iter(feats.values())).shape[1])
    write_json(exp_dir / "history.json", history)
    write_json(exp_dir / "generalist.json", {"path": str(generalist_path),
                                             "system": Path(generalist_path).parent.name})
    write_run(exp_dir, "specialists", {"clusters": len(model.clusters),
                                       "cluster_size": cfg.cluster_size, "top_n": cfg.top_n},
              device=device, seed=cfg.seed, config=to_dict(cfg), data=str(data_dir),
              ali=str(ali_dir), teacher=str(generalist_path))
    mark_done(exp_dir)


@torch.no_grad()
def run_specialist_coverage(model_path, data_dir, ali_dir, decode_dir, device,
                            batch_size: int = 16) -> list[dict]:
    """Per number of active specialists covering the aligned pdf: frames, and the frame
    accuracy of the generalist alone and of the combination."""
    model = load_acoustic_model(model_path, device)
    if not isinstance(model, SpecialistAcousticModel):
        raise ValueError(f"{model_path}: not a generalist with specialists")
    d, feats = load_dir_feats(data_dir)
    ali = read_alignments(ali_dir, d, feats)
    feats_t = as_tensors(feats)
    utts = [u for u in d.utts if u in ali]
    rows: dict[int, list[int]] = {}  # covering -> [frames, generalist right, combined right]
    in_cluster = model.cluster_mask.to(device)
    for i in progress(range(0, len(utts), batch_size), "coverage", unit="batches"):
        batch = utts[i:i + batch_size]
        for u, (logq, logp_g, active) in zip(batch, model.combine([feats_t[u] for u in batch])):
            y = torch.from_numpy(ali[u]).to(logq.device)
            covering = (active & in_cluster[:, y].T).sum(-1)
            g_ok, q_ok = logp_g.argmax(-1) == y, logq.argmax(-1) == y
            for k in covering.unique().tolist():
                sel = covering == k
                r = rows.setdefault(k, [0, 0, 0])
                r[0] += int(sel.sum())
                r[1] += int(g_ok[sel].sum())
                r[2] += int(q_ok[sel].sum())
    table = [{"covering": k, "frames": f, "generalist_acc": round(100 * g / f, 2),
              "combined_acc": round(100 * q / f, 2), "delta_correct": q - g,
              "relative_change": round(100 * (q - g) / g, 2) if g else None}
             for k, (f, g, q) in sorted(rows.items())]
    write_json(Path(decode_dir) / "coverage.json", {"model": str(model_path),
                                                    "data": str(data_dir), "rows": table})
    mark_done(decode_dir, "coverage")
    for r in table:
        log.info("covered by %d: %d frames, generalist %.2f%%, with specialists %.2f%%",
                 r["covering"], r["frames"], r["generalist_acc"], r["combined_acc"])
    return table
