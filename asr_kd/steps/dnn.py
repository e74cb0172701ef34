"""Stage 6: a DNN acoustic model trained with frame-level cross-entropy on the alignments."""

from __future__ import annotations

import logging
from pathlib import Path

from asr_kd.models.acoustic import DnnAcousticModel, read_priors
from asr_kd.steps.common import load_dir_feats, num_pdfs_of, read_alignments
from asr_kd.train.trainer import TrainConfig, train_frame_ce
from asr_kd.utils.config import save_config
from asr_kd.utils.io import clear_done, mark_done, write_json

log = logging.getLogger(__name__)


def run_train_dnn(data_dir, ali_dir, exp_dir, cfg: TrainConfig, device) -> None:
    exp_dir = Path(exp_dir)
    clear_done(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, exp_dir / "config.yaml")
    _, feats = load_dir_feats(data_dir)
    targets = read_alignments(ali_dir)
    num_pdfs = num_pdfs_of(ali_dir)
    net, history = train_frame_ce(cfg, feats, targets, num_pdfs, exp_dir, device)
    model = DnnAcousticModel(net, cfg.model, read_priors(Path(ali_dir) / "priors"))
    model.save(exp_dir / "final.pt", input_dim=next(iter(feats.values())).shape[1])
    write_json(exp_dir / "history.json", history)
    mark_done(exp_dir)
