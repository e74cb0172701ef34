"""Kaldi feature transforms in torch: deltas, MFCC (DCT) from log-mel, frame splicing.

All functions take [T, D] or a padded batch [B, T, D] (with optional `lengths` [B]) on any
device. Out-of-range frames are replaced by the nearest real frame (edge replication), as in
Kaldi; for a padded batch "real" means t < lengths[b], and padded output rows are zero.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def delta_scales(order: int, window: int) -> list[np.ndarray]:
    """Kaldi's DeltaFeatures windows (float32 as in Kaldi): w0 = [1],
    w_i[j + k] += j * w_{i-1}[k] for j in [-window, window], then w_i /= sum_j j^2.
    w_i has 2*i*window + 1 taps centred on the current frame."""
    if order < 0 or window <= 0:
        raise ValueError(f"bad delta options order={order} window={window}")
    scales = [np.ones(1, dtype=np.float32)]
    for _ in range(order):
        prev = scales[-1]
        prev_off = (len(prev) - 1) // 2
        cur_off = prev_off + window
        cur = np.zeros(len(prev) + 2 * window, dtype=np.float32)
        normalizer = np.float32(0.0)
        for j in range(-window, window + 1):
            normalizer += np.float32(j * j)
            for k in range(-prev_off, prev_off + 1):
                cur[j + k + cur_off] += np.float32(j) * prev[k + prev_off]
        cur *= np.float32(1.0 / normalizer)
        scales.append(cur)
    return scales


def _batched(feats: torch.Tensor, lengths) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """-> (feats [B, T, D], lengths [B] on feats.device, whether the input was unbatched)."""
    squeeze = feats.dim() == 2
    if squeeze:
        feats = feats.unsqueeze(0)
    if feats.dim() != 3:
        raise ValueError(f"feats must be [T, D] or [B, T, D], got {tuple(feats.shape)}")
    B, T, _ = feats.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64, device=feats.device)
    else:
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=feats.device)
    return feats, lengths, squeeze


def _clamped_index(lengths: torch.Tensor, T: int, offsets: torch.Tensor) -> torch.Tensor:
    """index [B, T, K] = clamp(t + offsets[k], 0, lengths[b] - 1)."""
    t = torch.arange(T, device=lengths.device)
    idx = t[None, :, None] + offsets[None, None, :]  # [1, T, K]
    last = (lengths - 1).clamp(min=0)[:, None, None]  # [B, 1, 1]
    return torch.minimum(idx, last).clamp(min=0)  # [B, T, K]


def _gather_frames(feats: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """feats [B, T, D], idx [B, T, K] -> [B, T, K, D] with out[b,t,k] = feats[b, idx[b,t,k]]."""
    B, T, D = feats.shape
    K = idx.shape[-1]
    flat = idx.reshape(B, T * K, 1).expand(B, T * K, D)
    return torch.gather(feats, 1, flat).view(B, T, K, D)


def _mask_padding(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    valid = torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None]  # [B, T]
    return out.masked_fill(~valid[..., None], 0.0)


def add_deltas(feats: torch.Tensor, order: int = 2, window: int = 2, lengths=None):
    """Kaldi's add-deltas: [..., T, D] -> [..., T, D*(order+1)] = [x, delta, delta-delta, ...].

    Block i at frame t is sum_j w_i[j] * x[clamp(t + j)] with w_i from `delta_scales`
    (e.g. order 1, window 2: (-2x[t-2] - x[t-1] + x[t+1] + 2x[t+2]) / 10).
    """
    x, lengths, squeeze = _batched(feats, lengths)
    B, T, D = x.shape
    blocks = [x]
    for scales in delta_scales(order, window)[1:]:
        half = (len(scales) - 1) // 2
        offsets = torch.arange(-half, half + 1, device=x.device)
        frames = _gather_frames(x, _clamped_index(lengths, T, offsets))  # [B, T, K, D]
        acc = torch.zeros_like(x)
        for k, sc in enumerate(scales.tolist()):  # Kaldi's accumulation order, zero taps skipped
            if sc != 0.0:
                acc = acc + sc * frames[:, :, k]
        blocks.append(acc)
    out = _mask_padding(torch.cat(blocks, dim=-1), lengths)  # [B, T, D*(order+1)]
    return out[0] if squeeze else out


def splice(feats: torch.Tensor, left: int, right: int, lengths=None) -> torch.Tensor:
    """Kaldi's splice-feats: [..., T, D] -> [..., T, (left+1+right)*D];
    out[t] = [x[clamp(t-left)], ..., x[t], ..., x[clamp(t+right)]]."""
    if left < 0 or right < 0:
        raise ValueError("splice contexts must be >= 0")
    x, lengths, squeeze = _batched(feats, lengths)
    B, T, D = x.shape
    offsets = torch.arange(-left, right + 1, device=x.device)
    frames = _gather_frames(x, _clamped_index(lengths, T, offsets))  # [B, T, K, D]
    out = _mask_padding(frames.reshape(B, T, -1), lengths)
    return out[0] if squeeze else out


@functools.lru_cache(maxsize=16)
def dct_matrix(num_bins: int, num_ceps: int = 13, cepstral_lifter: float = 22.0) -> np.ndarray:
    """Kaldi's MFCC projection, float32 [num_ceps, num_bins], lifter folded in.

    ComputeDctMatrix: M[0, n] = sqrt(1/N), M[k, n] = sqrt(2/N) cos(pi/N (n + 0.5) k);
    lifter (if L != 0): c_k *= 1 + 0.5 L sin(pi k / L).
    """
    if not 0 < num_ceps <= num_bins:
        raise ValueError(f"num_ceps={num_ceps} must be in [1, num_bins={num_bins}]")
    n = np.arange(num_bins, dtype=np.float64)[None, :]
    k = np.arange(num_ceps, dtype=np.float64)[:, None]
    m = np.sqrt(2.0 / num_bins) * np.cos(math.pi / num_bins * (n + 0.5) * k)
    m[0, :] = math.sqrt(1.0 / num_bins)
    m = m.astype(np.float32)
    if cepstral_lifter != 0.0:
        lift = 1.0 + 0.5 * cepstral_lifter * np.sin(math.pi * k[:, 0] / cepstral_lifter)
        m = m * lift.astype(np.float32)[:, None]
    return m


def mfcc_from_fbank(
    logmel: torch.Tensor, num_ceps: int = 13, cepstral_lifter: float = 22.0
) -> torch.Tensor:
    """MFCC from stored log-mel: [..., T, M] -> [..., T, num_ceps] = lifter * (DCT @ logmel).

    Equals Kaldi's compute-mfcc-feats --use-energy=false with the same frame/mel options
    (C0 is the DCT's, not the log energy). Padded zero rows map to zero rows.
    """
    m = dct_matrix(logmel.shape[-1], num_ceps, float(cepstral_lifter))
    dct = torch.from_numpy(m).to(device=logmel.device, dtype=logmel.dtype)
    return logmel @ dct.T
