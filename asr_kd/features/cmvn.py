"""Cepstral mean (and variance) normalisation with Kaldi's stats layout.

Stats of frames x_1..x_T (dimension D), float64 [2, D+1] as in Kaldi's cmvn.ark:
    row 0: [sum_t x_t(0), ..., sum_t x_t(D-1), T]
    row 1: [sum_t x_t(0)^2, ..., sum_t x_t(D-1)^2, 0]
Stats of several utterances (a speaker) are the sum of their stats.

ApplyCmvn: with count c, mean mu_d = S_d / c, and (norm_vars) var_d = Q_d / c - mu_d^2
floored at 1e-20:  y_d = (x_d - mu_d) * scale_d,  scale_d = 1 / sqrt(var_d) or 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from asr_kd_runtime.features import cmvn_stats as numpy_cmvn_stats

VAR_FLOOR = 1.0e-20  # Kaldi's floor on the variance in ApplyCmvn


def cmvn_stats(feats) -> np.ndarray:
    """Kaldi CMVN stats of one matrix: feats [T, D] (numpy or torch) -> float64 [2, D+1]."""
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().numpy()
    x = np.asarray(feats)
    if x.ndim != 2:
        raise ValueError(f"feats must be [T, D], got shape {x.shape}")
    return numpy_cmvn_stats(x)


def accumulate_cmvn(
    utt_feats: Mapping[str, object] | Iterable[tuple[str, object]],
    utt2spk: Mapping[str, str],
) -> dict[str, np.ndarray]:
    """Per-speaker stats: sum of cmvn_stats over each speaker's utterances -> {spk: [2, D+1]}."""
    items = utt_feats.items() if isinstance(utt_feats, Mapping) else utt_feats
    out: dict[str, np.ndarray] = {}
    for utt, feats in items:
        if utt not in utt2spk:
            raise ValueError(f"utterance {utt!r} has no speaker in utt2spk")
        spk = utt2spk[utt]
        st = cmvn_stats(feats)
        if spk in out:
            out[spk] += st
        else:
            out[spk] = st
    return out


def _offset_scale(stats, norm_vars: bool, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(offset [D], scale [D]) float64 such that y = x * scale + offset (Kaldi's ApplyCmvn)."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[1] != dim + 1 or stats.shape[0] < (2 if norm_vars else 1):
        raise ValueError(f"cmvn stats of shape {stats.shape} do not fit feature dim {dim}")
    count = stats[0, dim]
    if count < 1.0:
        raise ValueError(f"insufficient cmvn stats count {count}")
    mean = stats[0, :dim] / count
    if not norm_vars:
        return -mean, np.ones(dim)
    var = np.maximum(stats[1, :dim] / count - mean * mean, VAR_FLOOR)
    scale = 1.0 / np.sqrt(var)
    return -mean * scale, scale


def apply_cmvn(feats, stats, norm_vars: bool = False):
    """Normalise feats [..., T, D] (numpy or torch, any device) with stats [2, D+1].

    Like Kaldi, offset/scale are computed in float64 and then cast to the features' float
    dtype, so y = x * scale + offset is evaluated in that dtype. Returns the input's type.
    """
    dim = feats.shape[-1]
    offset, scale = _offset_scale(stats, norm_vars, dim)
    if isinstance(feats, torch.Tensor):
        dtype = feats.dtype if feats.is_floating_point() else torch.float32
        x = feats.to(dtype)
        off = torch.from_numpy(offset).to(device=x.device, dtype=dtype)
        if not norm_vars:
            return x + off
        return x * torch.from_numpy(scale).to(device=x.device, dtype=dtype) + off
    x = np.asarray(feats)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if not norm_vars:
        return x + offset.astype(x.dtype)
    return x * scale.astype(x.dtype) + offset.astype(x.dtype)
