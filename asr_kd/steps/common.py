"""Helpers the stages share: loading features and alignments of a data dir."""

from __future__ import annotations

import json
from pathlib import Path

import kaldiio
import numpy as np

from asr_kd.data import DataDir, load_data_dir, raise_first
from asr_kd.data.validate import alignment_problems, feats_problems, oov_problems
from asr_kd.features import load_feats
from asr_kd.utils.io import atomic_path


def load_dir_feats(data_dir, require_text: bool = True,
                   lang_dir=None) -> tuple[DataDir, dict[str, np.ndarray]]:
    """The data dir and its CMVN-normalised features, checked against each other (and its
    transcripts against the lang's words, with `lang_dir`)."""
    d = load_data_dir(data_dir, require_text=require_text, check_audio_exists=False)
    if lang_dir is not None:
        raise_first(oov_problems(d, lang_dir))
    raw: dict[str, np.ndarray] = {}
    raise_first(feats_problems(d, mats=raw))
    return d, load_feats(data_dir, d.utt2spk, apply_cmvn=True, feats=raw)


def write_int_vectors(path, vectors: dict[str, np.ndarray]) -> None:
    """Kaldi int-vector archive (what Kaldi's ali-to-pdf writes), keys sorted."""
    with atomic_path(path) as tmp:
        kaldiio.save_ark(str(tmp), {u: np.asarray(vectors[u], dtype=np.int32)
                                    for u in sorted(vectors)})


def read_int_vectors(path) -> dict[str, np.ndarray]:
    return {u: np.asarray(v, dtype=np.int64) for u, v in kaldiio.load_ark(str(path))}


def read_alignments(ali_dir, d: DataDir | None = None,
                    feats: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """ali.ark of `ali_dir`; with `d` and its `feats`, checked to have one pdf per frame."""
    path = Path(ali_dir) / "ali.ark"
    ali = read_int_vectors(path)
    if d is not None:
        raise_first(alignment_problems(d, ali, path, {u: len(x) for u, x in feats.items()}))
    return ali


def num_pdfs_of(ali_dir) -> int:
    return int((Path(ali_dir) / "num_pdfs").read_text().split()[0])


def recipe_decode_scores(run_dir) -> dict:
    """The scores.json of the recipe's own decode of a system (its first test set; not an
    `asr-kd evaluate` decode): its graph, decode config and LM weight choice."""
    for path in sorted(Path(run_dir).glob("decode_*/scores.json")):
        if not path.parent.name.startswith("decode_eval_"):
            return json.loads(path.read_text())
    raise FileNotFoundError(f"{run_dir}: no decode_<test set>/scores.json; decode the recipe's "
                            f"test set with this system first (stage 9)")
