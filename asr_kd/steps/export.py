"""`asr-kd export RECIPE_DIR --system NAME [--int8]`: a trained system as a directory the
torch-free runtime (asr_kd_runtime) transcribes with. Its layout: asr_kd_runtime/bundle.py.

The system decodes there as the recipe decoded its test set: the same graph (with the word
insertion penalty the dev set chose folded into its word arcs), acoustic scale (1 / the chosen
LM weight), beam and active-state limits (scores.json of the recipe's decode). Its features are
the system's training data's fbank settings; the global CMVN stats are the sum of that data's
per-speaker stats. int8 calibration reads training utterances only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnxruntime
from asr_kd_runtime import bundle as fmt

from asr_kd.acoustic import load_acoustic_model
from asr_kd.data import load_data_dir
from asr_kd.decode.lm_weight import LmPoint, add_word_penalty
from asr_kd.export import export_onnx, quantize_int8, scoring_module
from asr_kd.features import iter_normalised_feats, read_scp_matrices
from asr_kd.features.fbank import FbankConfig
from asr_kd.steps.common import recipe_decode_scores
from asr_kd.utils.config import load_config
from asr_kd.utils.fst import read_fst, write_fst
from asr_kd.utils.io import write_json, write_text
from asr_kd.utils.runinfo import provenance, read_run

log = logging.getLogger(__name__)

CALIBRATION_UTTS = 200


def decode_settings(scores: dict) -> tuple[dict, LmPoint]:
    """The decode config the recipe's test decode used, at the LM weight it decoded with."""
    cfg = dict(scores["config"])
    tuning = scores.get("lm_tuning") or {}
    if tuning.get("chosen"):
        c = tuning["chosen"]
        point = LmPoint(float(c["lm_weight"]), float(c["word_ins_penalty"]))
    else:
        point = LmPoint.of_scale(cfg["acoustic_scale"])
    cfg["acoustic_scale"] = point.acoustic_scale
    return {**cfg, **point.to_dict(), "chosen_on": tuning.get("chosen_on")}, point


def global_cmvn(data_dir) -> np.ndarray:
    """The data dir's per-speaker CMVN stats summed: [2, F + 1] over all its frames."""
    stats = read_scp_matrices(Path(data_dir) / "cmvn.scp")
    return np.sum([np.asarray(s, dtype=np.float64) for s in stats.values()], axis=0)


def calibration_feats(data_dir, n: int) -> list[np.ndarray]:
    """`n` training utterances spread over the data dir (every k-th in sorted order), CMVN'd
    per speaker as in training."""
    d = load_data_dir(data_dir, check_audio_exists=False)
    keep = set(d.utts[:: max(1, len(d.utts) // n)][:n])
    return [f for u, f in iter_normalised_feats(data_dir, d.utt2spk) if u in keep]


def _model_facts(model, module, input_dim: int) -> dict:
    nets = list(module.nets)
    # A net with `forward_inner` scores frame t from frames t - left .. t + right alone (MLP,
    # TDNN, CNN-TDNN), so the runtime can stream it exactly; a BLSTM or conformer sees the
    # whole utterance (its contexts are training-chunk sizes).
    finite = all(hasattr(n, "forward_inner") for n in nets)
    left = [n.left_context for n in nets] if finite else []
    right = [n.right_context for n in nets] if finite else []
    return {"input_dim": input_dim, "num_pdfs": int(module.log_prior.numel()),
            "params": int(model.num_params), "members": len(nets),
            "architecture": [m.spec for m in getattr(model, "members", [model])],
            "left_context": max(left) if finite else None,
            "right_context": max(right) if finite else None,
            "streamable": finite,
            "output": "log P(pdf | x) - log P(pdf), unscaled (times decode.acoustic_scale)"}


def run_export(recipe_dir, system: str, out_dir=None, int8: bool = False,
               calibration_utts: int = CALIBRATION_UTTS) -> Path:
    recipe_dir = Path(recipe_dir).resolve()
    run_dir = recipe_dir / "exp" / system
    run, model_path = read_run(run_dir), run_dir / "final.pt"
    if run is None or not model_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no run.json and final.pt; is '{system}' a trained "
                                "DNN system of this recipe? (GMMs do not export)")
    out = Path(out_dir).resolve() if out_dir else run_dir / ("export_int8" if int8 else "export")
    scores = recipe_decode_scores(run_dir)
    decode, point = decode_settings(scores)
    data_dir = recipe_dir / run["data"]
    fbank = load_config(FbankConfig, data_dir / "fbank.yaml")
    model = load_acoustic_model(model_path, "cpu")
    module = scoring_module(model)
    t0 = time.time()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    onnx_path = export_onnx(module, fbank.dim, tmp / fmt.MODEL)
    quant = None
    if int8:
        fp32 = onnx_path.rename(tmp / "model.fp32.onnx")
        with contextlib.chdir(recipe_dir):  # scp paths are relative to the recipe dir
            calib = calibration_feats(run["data"], calibration_utts)
        quant = quantize_int8(fp32, tmp / fmt.MODEL, calib)
        fp32.unlink()
    log.info("%s: ONNX (%s) in %.1f s", system, "int8" if int8 else "fp32", time.time() - t0)
    graph_dir = recipe_dir / scores["graph"]
    write_fst(add_word_penalty(read_fst(graph_dir / "HCLG.fst"), point.penalty),
              tmp / fmt.GRAPH)
    shutil.copyfile(graph_dir / "words.txt", tmp / fmt.WORDS)
    write_text(tmp / fmt.FBANK, json.dumps(fbank.to_dict(), indent=2) + "\n")
    with contextlib.chdir(recipe_dir):
        stats = global_cmvn(run["data"])
    fmt.write_kaldi_text_matrix(tmp / fmt.GLOBAL_CMVN, stats)
    prov = provenance()
    manifest = {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "system": system,
        "precision": "int8" if int8 else "fp32", "quantization": quant,
        "model": {**_model_facts(model, module, fbank.dim),
                  "frame_shift_ms": fbank.frame_shift_ms},
        "decode": decode,
        "source": {"recipe": str(recipe_dir), "model": str(model_path.relative_to(recipe_dir)),
                   "graph": scores["graph"], "data": run["data"], "role": run["role"],
                   "settings": run.get("settings"),
                   "trained_at_commit": run.get("provenance", {}).get("commit"),
                   # the recipe's decode whose settings these are (its first decode dir)
                   "decode_data": scores.get("data"), "decode_wer": scores.get("wer")},
        "exported": {"commit": prov["commit"], "dirty": prov["dirty"], "time": prov["time"],
                     "versions": {**prov["versions"], "onnxruntime": onnxruntime.__version__}},
        "files": {name: fmt.sha256(tmp / name) for name in fmt.FILES},
    }
    write_json(tmp / fmt.MANIFEST, manifest)
    # A deploy dir is read by other users and services: the files get the umask's modes, not
    # the private ones of the atomic writers' temporary files.
    umask = os.umask(0)
    os.umask(umask)
    for f in tmp.iterdir():
        f.chmod(0o666 & ~umask)
    # The finished directory replaces an old one only once it is whole.
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    log.info("%s: exported to %s (%.1f MB model)", system, out,
             (out / fmt.MODEL).stat().st_size / 1e6)
    return out
