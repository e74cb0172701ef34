"""`asr-kd evaluate RECIPE_DIR DATA_DIR --system NAME`: score a trained system on any data dir.

The system is the run in RECIPE_DIR/exp/NAME (NAME may be nested, e.g. sweep/T2), and its
run.json says what it was trained on. The data dir (Kaldi's, e.g. a user's own recordings) is
copied to RECIPE_DIR/data/eval_<name> (relative audio paths resolved against the current
directory), its features are computed with the fbank settings of the system's own training
data (with per-speaker CMVN of the new data), and the model is decoded with the graph and
decode settings the recipe used for that system's test set, into exp/NAME/decode_eval_<name>.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.data.datadir import is_pipe
from asr_kd.decode import DEFAULT_DECODER, DecodeConfig
from asr_kd.features import FbankConfig
from asr_kd.steps.common import recipe_decode_scores
from asr_kd.steps.decode import run_decode
from asr_kd.steps.feats import run_compute_feats
from asr_kd.utils.config import from_dict, load_config
from asr_kd.utils.io import clear_done, is_done, write_text
from asr_kd.utils.runinfo import read_run

log = logging.getLogger(__name__)


def _absolute(spec: str) -> str:
    if is_pipe(spec) or Path(spec).is_absolute():
        return spec
    return str(Path(spec).resolve())


def run_evaluate(recipe_dir, data_dir, system: str, device, allow_pipes: bool = False,
                 force: bool = False, decoder: str = DEFAULT_DECODER) -> dict:
    recipe_dir, src = Path(recipe_dir), Path(data_dir).resolve()
    run_dir = recipe_dir / "exp" / system
    run = read_run(run_dir)
    model = next((p for p in (run_dir / n for n in ("final.pt", "final.mdl")) if p.exists()),
                 None)
    if run is None or model is None:
        raise FileNotFoundError(f"{run_dir}: no run.json and final.pt or final.mdl; is "
                                f"'{system}' a trained system of this recipe?")
    recipe_decode = recipe_decode_scores(run_dir)
    name = f"eval_{src.name}"
    dest = recipe_dir / "data" / name
    made_from = dest / "source"  # which data dir the copy was made from
    if force or not made_from.exists() or made_from.read_text() != f"{src}\n":
        d = load_data_dir(src, allow_pipes=allow_pipes, check_audio_exists=False)
        write_data_dir(dest, {r: _absolute(w) for r, w in d.wav.items()}, d.text, d.utt2spk,
                       d.segments, d.reco2speed)
        clear_done(dest, "feats")
        write_text(made_from, f"{src}\n")
    if force or not is_done(dest, "feats"):
        fbank = recipe_dir / run["data"] / "fbank.yaml"  # written by the features stage
        run_compute_feats(dest, load_config(FbankConfig, fbank), device, allow_pipes)
    return run_decode(system, model, recipe_dir / recipe_decode["graph"], dest,
                      run_dir / f"decode_{name}",
                      from_dict(DecodeConfig, recipe_decode["config"]), device,
                      decoder=decoder)
