"""Kaldi ark/scp storage of features and CMVN stats, and the compute-feats stage driver.

Layout, as Kaldi's steps/make_fbank.sh + compute_cmvn_stats.sh (one archive per data dir):
    <data_dir>/feats.ark, feats.scp   float32 matrices [T, D] per utterance
    <data_dir>/cmvn.ark,  cmvn.scp    float64 stats [2, D+1] per speaker
scp lines are "<key> <data_dir>/<name>.ark:<byte offset>", keys sorted (byte order), the path
as the caller gave data_dir (so relative paths are relative to the cwd, as in Kaldi).
Both files are written under temporary names and renamed into place; the scp names the
final archive, so it is valid as soon as it exists.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr_kd.features.cmvn import apply_cmvn as _apply_cmvn
from asr_kd.features.cmvn import cmvn_stats
from asr_kd.features.fbank import FbankConfig, check_warp, fbank_utterances, num_frames
from asr_kd.utils.io import atomic_path
from asr_kd.utils.progress import Progress


def as_tensors(feats: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Feature matrices as float32 torch tensors (on the CPU), keyed as given."""
    return {u: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            for u, x in feats.items()}


def _items(mats) -> Iterable[tuple[str, np.ndarray]]:
    return mats.items() if isinstance(mats, Mapping) else mats


def _write_ark_scp(data_dir, ark_name: str, mats, dtype) -> int:
    """Write <data_dir>/<ark_name> (matrices in arrival order) and the matching .scp (keys
    sorted); returns the number of matrices."""
    if not ark_name.endswith(".ark") or os.sep in ark_name:
        raise ValueError(f"ark_name must be a plain file name ending in .ark, got {ark_name!r}")
    ark_final = os.path.join(os.fspath(data_dir), ark_name)
    scp_final = Path(ark_final[: -len(".ark")] + ".scp")
    if any(c.isspace() for c in ark_final):
        raise ValueError(f"archive path {ark_final!r} contains whitespace (unusable in an scp)")
    offsets: dict[str, int] = {}
    with atomic_path(ark_final) as tmp_ark:
        with open(tmp_ark, "wb") as f:
            for key, mat in _items(mats):
                if not key or any(c.isspace() for c in key):
                    raise ValueError(f"bad key {key!r}: empty or contains whitespace")
                if key in offsets:
                    raise ValueError(f"duplicate key {key!r}")
                arr = np.ascontiguousarray(np.asarray(mat, dtype=dtype))
                if arr.ndim != 2:
                    raise ValueError(f"{key}: expected a matrix, got shape {arr.shape}")
                f.write(f"{key} ".encode())
                offsets[key] = f.tell()  # the scp offset points at the "\0B" binary header
                kaldiio.save_mat(f, arr)
        # Drop the old scp before the new ark replaces the old one: a crash between the two
        # renames then leaves no scp (readers fail loudly) instead of one with stale offsets.
        scp_final.unlink(missing_ok=True)
    lines = "".join(f"{k} {ark_final}:{offsets[k]}\n" for k in sorted(offsets))
    with atomic_path(scp_final) as tmp_scp:
        tmp_scp.write_text(lines, encoding="utf-8")
    return len(offsets)


def write_feats(data_dir, feats, ark_name: str = "feats.ark") -> int:
    """feats: {utt: float32 [T, D]} or iterable of (utt, [T, D]) -> <data_dir>/feats.{ark,scp}.

    An iterable is streamed to the archive (nothing held in memory); the scp is sorted.
    Returns the number of utterances written.
    """
    return _write_ark_scp(data_dir, ark_name, feats, np.float32)


def write_cmvn(data_dir, stats, ark_name: str = "cmvn.ark") -> int:
    """stats: {spk: float64 [2, D+1]} -> <data_dir>/cmvn.{ark,scp} (double matrices, as Kaldi)."""
    return _write_ark_scp(data_dir, ark_name, stats, np.float64)


def write_matrices(out_dir, mats, ark_name: str, double: bool = False) -> int:
    """Any matrices by key (e.g. fMLLR transforms by speaker) -> <out_dir>/<name>.{ark,scp}, the
    same way: float32 (Kaldi's default) or, with `double`, float64. Returns how many."""
    return _write_ark_scp(out_dir, ark_name, mats, np.float64 if double else np.float32)


def read_scp_matrices(scp_path) -> dict[str, np.ndarray]:
    """All matrices of a Kaldi scp, in scp order: {key: np.ndarray}."""
    loader = kaldiio.load_scp(os.fspath(scp_path))
    return {key: np.asarray(loader[key]) for key in loader}


def load_feats(
    data_dir,
    utt2spk: Mapping[str, str] | None = None,
    apply_cmvn: bool = True,
    norm_vars: bool = False,
    feats: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Read <data_dir>/feats.scp (or take `feats`, its matrices already read); with apply_cmvn,
    normalise each utterance with its speaker's stats from <data_dir>/cmvn.scp (Kaldi's
    apply-cmvn --utt2spk). -> {utt: float32 [T, D]}."""
    data_dir = Path(data_dir)
    if feats is None:
        feats = read_scp_matrices(data_dir / "feats.scp")
    if not apply_cmvn:
        return {u: m.astype(np.float32, copy=False) for u, m in feats.items()}
    if utt2spk is None:
        raise ValueError("load_feats(apply_cmvn=True) needs utt2spk")
    return dict(_normalised(data_dir, feats.items(), utt2spk, norm_vars))


def _normalised(data_dir: Path, items: Iterable[tuple[str, np.ndarray]],
                utt2spk: Mapping[str, str], norm_vars: bool) -> Iterator[tuple[str, np.ndarray]]:
    stats = read_scp_matrices(data_dir / "cmvn.scp")
    for utt, mat in items:
        spk = utt2spk.get(utt)
        if spk is None:
            raise ValueError(f"utterance {utt!r} has no speaker in utt2spk")
        if spk not in stats:
            raise ValueError(f"speaker {spk!r} (of {utt!r}) has no stats in {data_dir}/cmvn.scp")
        yield utt, _apply_cmvn(np.asarray(mat).astype(np.float32, copy=False), stats[spk],
                               norm_vars)


def iter_normalised_feats(data_dir, utt2spk: Mapping[str, str],
                          norm_vars: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """(utt, float32 [T, D]) of <data_dir>/feats.scp in its (sorted) order, each read when
    reached and normalised with its speaker's CMVN stats: a data dir larger than RAM streams."""
    data_dir = Path(data_dir)
    loader = kaldiio.load_scp(os.fspath(data_dir / "feats.scp"))
    return _normalised(data_dir, ((u, loader[u]) for u in loader), utt2spk, norm_vars)


def _chunks(
    waves: Iterable[tuple[str, np.ndarray, int]], cfg: FbankConfig, batch_seconds: float
) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Validate and group (utt, samples, rate) into lists of about batch_seconds of audio."""
    budget = batch_seconds * cfg.sample_rate
    chunk: list[tuple[str, np.ndarray]] = []
    total = 0
    for utt, samples, rate in waves:
        if int(rate) != cfg.sample_rate:
            raise ValueError(
                f"utterance {utt!r} has sample rate {rate} Hz but the fbank config expects "
                f"{cfg.sample_rate} Hz"
            )
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"utterance {utt!r}: expected mono 1-D samples, got {samples.shape}")
        n = len(samples)
        peak = float(np.abs(samples).max()) if n else 0.0
        if 0.0 < peak <= 1.0:  # e.g. soundfile's default float read; int16 scale is expected
            raise ValueError(
                f"utterance {utt!r}: samples peak at {peak:.3g}, which looks like [-1, 1] "
                "scaling; pass int16-scale samples (multiply by 32768) as Kaldi does"
            )
        if int(num_frames(torch.tensor([n]), cfg)[0]) == 0:
            raise ValueError(f"utterance {utt!r} is too short for one frame ({n} samples)")
        chunk.append((utt, samples))
        total += n
        if total >= budget:
            yield chunk
            chunk, total = [], 0
    if chunk:
        yield chunk


def compute_feats_for_data_dir(
    data_dir,
    waves: Iterable[tuple[str, np.ndarray, int]],
    utt2spk: Mapping[str, str],
    cfg: FbankConfig,
    device: str | torch.device = "cpu",
    progress: bool = True,
    batch_seconds: float = 200.0,
    utt2warp: Mapping[str, float] | None = None,
) -> int:
    """make_fbank + compute_cmvn_stats for one data dir; returns the total number of frames.

    waves yields (utt, samples float32 in int16 scale [N], sample_rate). Features are computed
    in chunks of ~batch_seconds of audio on `device` and streamed to feats.ark; per-speaker
    stats go to cmvn.ark. utt2warp: VTLN warp factors (unlisted: 1). Raises ValueError naming
    the utterance on a sample-rate mismatch, an utterance shorter than one frame, [-1, 1]-scaled
    samples, a warp factor the mel range cannot take, or a non-finite feature.
    """
    utt2warp = utt2warp or {}
    stats: dict[str, np.ndarray] = {}
    n_frames = 0
    total = len(waves) if hasattr(waves, "__len__") else None
    bar = Progress(total, f"fbank {data_dir}", unit="utts", enabled=progress)

    def feats_iter() -> Iterator[tuple[str, np.ndarray]]:
        nonlocal n_frames
        for chunk in _chunks(waves, cfg, batch_seconds):
            for utt, _ in chunk:
                if utt not in utt2spk:
                    raise ValueError(f"utterance {utt!r} has no speaker in utt2spk")
                try:
                    check_warp(cfg, utt2warp.get(utt, 1.0))
                except ValueError as e:
                    raise ValueError(f"utterance {utt!r}: {e}") from None
            # Dither seeded by the utterance id: reruns and resumed runs write the same features.
            seeds = [zlib.crc32(utt.encode()) for utt, _ in chunk]
            warps = [utt2warp.get(utt, 1.0) for utt, _ in chunk]
            feats = fbank_utterances([w for _, w in chunk], cfg, device, batch_seconds, seeds,
                                     warps)
            for (utt, _), f in zip(chunk, feats, strict=True):
                mat = f.numpy()
                if not np.isfinite(mat).all():
                    raise ValueError(f"utterance {utt!r}: non-finite (NaN/Inf) features")
                spk = utt2spk[utt]
                st = cmvn_stats(mat)
                stats[spk] = stats[spk] + st if spk in stats else st
                n_frames += mat.shape[0]
                yield utt, mat
            bar.update(len(chunk))

    try:
        write_feats(data_dir, feats_iter())
    finally:
        bar.close()
    write_cmvn(data_dir, stats)
    return n_frames
