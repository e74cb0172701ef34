"""`asr-kd evaluate RECIPE_DIR DATA_DIR --system NAME`: score a trained system on any data dir.

The data dir (Kaldi's, e.g. a user's own recordings) is copied to RECIPE_DIR/data/eval_<name>
(relative audio paths resolved against the current directory), its features are computed with
the recipe's conf/fbank.yaml and CMVN per speaker of the new data, and the system's model is
decoded with the recipe's graph (exp/graph_<system> where the system has its own) into
exp/<system>/decode_eval_<name>.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.data.datadir import is_pipe
from asr_kd.decode import DEFAULT_DECODER, DecodeConfig
from asr_kd.features import FbankConfig
from asr_kd.steps.decode import run_decode
from asr_kd.steps.feats import run_compute_feats
from asr_kd.utils.config import load_config
from asr_kd.utils.io import clear_done, is_done, write_text

log = logging.getLogger(__name__)


def _absolute(spec: str) -> str:
    if is_pipe(spec) or Path(spec).is_absolute():
        return spec
    return str(Path(spec).resolve())


def run_evaluate(recipe_dir, data_dir, system: str, device, allow_pipes: bool = False,
                 force: bool = False, decoder: str = DEFAULT_DECODER) -> dict:
    recipe_dir, src = Path(recipe_dir), Path(data_dir).resolve()
    model = next((p for p in (recipe_dir / "exp" / system / n for n in ("final.pt", "final.mdl"))
                  if p.exists()), None)
    if model is None:
        raise FileNotFoundError(f"{recipe_dir / 'exp' / system}: no final.pt or final.mdl; is "
                                f"'{system}' a trained system of this recipe?")
    name = f"eval_{src.name}"
    dest = recipe_dir / "data" / name
    made_from = dest / "source"  # which data dir the copy was made from
    if force or not made_from.exists() or made_from.read_text() != f"{src}\n":
        d = load_data_dir(src, allow_pipes=allow_pipes, check_audio_exists=False)
        write_data_dir(dest, {r: _absolute(w) for r, w in d.wav.items()}, d.text, d.utt2spk,
                       d.segments)
        clear_done(dest, "feats")
        write_text(made_from, f"{src}\n")
    if force or not is_done(dest, "feats"):
        run_compute_feats(dest, load_config(FbankConfig, recipe_dir / "conf" / "fbank.yaml"),
                          device, allow_pipes)
    conf = recipe_dir / "conf" / ("decode_gmm.yaml" if model.suffix == ".mdl"
                                  else "decode_dnn.yaml")
    graph = recipe_dir / "exp" / f"graph_{system}"  # a GMM with its own tree (mono below tri1)
    if not graph.exists():
        graph = recipe_dir / "exp" / "graph"
    return run_decode(system, model, graph, dest,
                      recipe_dir / "exp" / system / f"decode_{name}",
                      load_config(DecodeConfig, conf if conf.exists() else None), device,
                      decoder=decoder)
