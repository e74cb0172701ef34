"""Helpers the stages share: loading features and alignments of a data dir."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr_kd.data import DataDir, load_data_dir
from asr_kd.features import load_feats
from asr_kd.utils.io import atomic_path


def load_dir_feats(data_dir, require_text: bool = True) -> tuple[DataDir, dict[str, np.ndarray]]:
    """The data dir and its CMVN-normalised features, checked against each other."""
    d = load_data_dir(data_dir, require_text=require_text, check_audio_exists=False)
    if not (Path(data_dir) / "feats.scp").exists():
        raise FileNotFoundError(f"{data_dir}/feats.scp: no features; run the feats stage first")
    feats = load_feats(data_dir, d.utt2spk, apply_cmvn=True)
    missing = [u for u in d.utts if u not in feats]
    if missing:
        raise ValueError(f"{data_dir}/feats.scp: utterance '{missing[0]}' has no features "
                         f"({len(missing)} missing)")
    for u, x in feats.items():
        if not np.isfinite(x).all():
            raise ValueError(f"{data_dir}/feats.scp: utterance '{u}': NaN or Inf in features")
    return d, feats


def as_tensors(feats: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {u: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            for u, x in feats.items()}


def write_int_vectors(path, vectors: dict[str, np.ndarray]) -> None:
    """Kaldi int-vector archive (what Kaldi's ali-to-pdf writes), keys sorted."""
    with atomic_path(path) as tmp:
        kaldiio.save_ark(str(tmp), {u: np.asarray(vectors[u], dtype=np.int32)
                                    for u in sorted(vectors)})


def read_int_vectors(path) -> dict[str, np.ndarray]:
    return {u: np.asarray(v, dtype=np.int64) for u, v in kaldiio.load_ark(str(path))}


def read_alignments(ali_dir) -> dict[str, np.ndarray]:
    return read_int_vectors(Path(ali_dir) / "ali.ark")


def num_pdfs_of(ali_dir) -> int:
    return int((Path(ali_dir) / "num_pdfs").read_text().split()[0])
