"""Kaldi-compatible log mel filterbank features in pure, batched torch.

Per frame t of an utterance with n samples (window w = sr*frame_length_ms/1000 samples, shift s):

* frames:  snip_edges=True  -> T = 1 + (n - w) // s (0 if n < w), frame t starts at t*s;
           snip_edges=False -> T = (n + s//2) // s, frame t starts at t*s + s//2 - w//2 and
           out-of-range samples are reflected (-1 -> 0, n -> n-1), as Kaldi's ExtractWindow.
* x <- x + dither * N(0, 1)              (per frame, so overlapping samples get fresh noise)
* x <- x - mean(x)                       (remove_dc_offset)
* x[i] <- x[i] - c x[i-1], x[0] <- x[0] - c x[0]   (pre-emphasis, c = preemph_coeff)
* x <- x * window;  zero-pad to N = next power of two;  P[k] = |FFT(x)[k]|^2, k = 0..N/2
* E[m] = sum_k P[k] W[k, m] with Kaldi's MelBanks W (triangles in mel = 1127 ln(1 + f/700),
  FFT bin k at frequency k*sr/N, the Nyquist bin never used);  out = log(max(E, FLT_EPSILON)).
* With a VTLN warp factor a != 1 (per utterance: a data dir's spk2warp or utt2warp), the
  triangles' edges move as Kaldi's VtlnWarpFreq moves them: f -> f / a between the cut-offs
  (100 Hz * max(1, a) and (nyquist - 500 Hz) * min(1, a), Kaldi's vtln-low/-high defaults),
  linear to the fixed ends low_freq and high_freq outside them.

To stay close to Kaldi (kaldi-native-fbank is the tests' reference), the mel weights are built
in float32 as Kaldi builds them, and the FFT and mel projection run in float64 (framing stays
float32): a loud frame can hold far more energy than its lowest band, and a float32 FFT's
rounding would move that band's log. The measured agreement and the analysis behind these two
choices: docs/features.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

FLT_EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's log floor: log(max(x, FLT_EPSILON))
# Kaldi's --vtln-low and --vtln-high defaults (Hz; a negative high is an offset from nyquist).
VTLN_LOW, VTLN_HIGH = 100.0, -500.0
WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular")


@dataclasses.dataclass(frozen=True)
class FbankConfig:
    """Options of Kaldi's compute-fbank-feats (subset); frozen so it can key the caches."""

    sample_rate: int = 16000
    # Audio at another rate: resample it to sample_rate (Kaldi's --allow-downsample and
    # --allow-upsample) instead of refusing it.
    resample: bool = False
    num_mel_bins: int = 40
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0 means nyquist + high_freq
    use_log_fbank: bool = True

    def __post_init__(self):
        if self.window_type not in WINDOW_TYPES:
            raise ValueError(f"unknown window_type {self.window_type!r}; use one of {WINDOW_TYPES}")
        if self.window_size < 2 or self.window_shift < 1:
            raise ValueError("frame length/shift too small for the sample rate")
        hi = self.nyquist_high_freq
        if not (0.0 <= self.low_freq < hi <= self.sample_rate / 2):
            raise ValueError(f"bad mel range: low_freq={self.low_freq}, high_freq={hi}")

    @classmethod
    def from_dict(cls, d: dict) -> FbankConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in names:
                raise ValueError(f"unknown fbank option '{key}'")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # Kaldi: static_cast<int32>(samp_freq * 0.001 * frame_length_ms), i.e. truncation.
    @property
    def window_size(self) -> int:
        return int(self.sample_rate * 0.001 * self.frame_length_ms)

    @property
    def window_shift(self) -> int:
        return int(self.sample_rate * 0.001 * self.frame_shift_ms)

    @property
    def padded_window_size(self) -> int:
        w = self.window_size
        return 1 << (w - 1).bit_length() if self.round_to_power_of_two else w

    @property
    def nyquist_high_freq(self) -> float:
        nyq = 0.5 * self.sample_rate
        return self.high_freq if self.high_freq > 0.0 else nyq + self.high_freq

    @property
    def dim(self) -> int:
        return self.num_mel_bins


def num_frames(num_samples: torch.Tensor, cfg: FbankConfig) -> torch.Tensor:
    """Kaldi's NumFrames(flush=true) for a tensor of sample counts (int64)."""
    n = num_samples.to(torch.int64)
    w, s = cfg.window_size, cfg.window_shift
    if cfg.snip_edges:
        return torch.where(n < w, torch.zeros_like(n), 1 + (n - w).clamp(min=0) // s)
    return (n + s // 2) // s


def _mel32(f) -> np.ndarray:
    """Kaldi's MelScale in float32: 1127 logf(1 + f/700), logf taken as correctly rounded."""
    f32 = np.float32
    a = (f32(1.0) + np.asarray(f, dtype=f32) / f32(700.0)).astype(f32)
    return (f32(1127.0) * np.log(a.astype(np.float64)).astype(f32)).astype(f32)


@functools.lru_cache(maxsize=32)
def _window_np(cfg: FbankConfig) -> np.ndarray:
    """Kaldi's FeatureWindowFunction, float64 [w]."""
    w = cfg.window_size
    a = 2.0 * math.pi / (w - 1)
    i = np.arange(w, dtype=np.float64)
    if cfg.window_type == "povey":
        return (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    if cfg.window_type == "hamming":
        return 0.54 - 0.46 * np.cos(a * i)
    if cfg.window_type == "hanning":
        return 0.5 - 0.5 * np.cos(a * i)
    return np.ones(w)


def check_warp(cfg: FbankConfig, warp: float) -> None:
    """Raise ValueError unless `warp` is a VTLN factor Kaldi's MelBanks accepts for cfg: its
    cut-offs (where the warp's slope changes) inside the mel range."""
    if not (math.isfinite(warp) and warp > 0):
        raise ValueError(f"VTLN warp factor {warp!r} is not a positive number")
    lo, hi = cfg.low_freq, cfg.nyquist_high_freq
    vhigh = VTLN_HIGH + 0.5 * cfg.sample_rate if VTLN_HIGH < 0 else VTLN_HIGH
    low, high = VTLN_LOW * max(1.0, warp), vhigh * min(1.0, warp)
    if warp != 1.0 and not (lo < VTLN_LOW and vhigh < hi and low < high):
        raise ValueError(f"VTLN warp factor {warp:g}: its cut-offs {low:g} and {high:g} Hz must "
                         f"lie inside the mel range ({lo:g}, {hi:g} Hz)")


def _vtln_warp_mel(mel: np.ndarray, cfg: FbankConfig, warp: float) -> np.ndarray:
    """Kaldi's VtlnWarpMelFreq in float32: mel -> Hz, VtlnWarpFreq, -> mel."""
    f32 = np.float32
    lo, hi = f32(cfg.low_freq), f32(cfg.nyquist_high_freq)
    vhigh = VTLN_HIGH + 0.5 * cfg.sample_rate if VTLN_HIGH < 0 else VTLN_HIGH
    a = f32(warp)
    freq = (f32(700.0) * (np.exp((mel / f32(1127.0)).astype(np.float64)).astype(f32)
                          - f32(1.0))).astype(f32)
    low = f32(VTLN_LOW) * max(f32(1.0), a)  # the cut-offs, where the warp's slope changes
    high = f32(vhigh) * min(f32(1.0), a)
    scale = f32(1.0) / a
    scale_left = (scale * low - lo) / (low - lo)
    scale_right = (hi - scale * high) / (hi - high)
    warped = np.where(freq < low, lo + scale_left * (freq - lo),
                      np.where(freq < high, scale * freq, hi + scale_right * (freq - hi)))
    warped = np.where((freq < lo) | (freq > hi), freq, warped).astype(f32)
    return _mel32(warped)


@functools.lru_cache(maxsize=32)
def mel_banks(cfg: FbankConfig, warp: float = 1.0) -> np.ndarray:
    """Kaldi's MelBanks as a float64 matrix [N/2 + 1, num_mel_bins], built in float32 as Kaldi.

    W[k, m] = (mel_k - l_m)/(c_m - l_m) on the rising side, (r_m - mel_k)/(r_m - c_m) on the
    falling side, 0 outside (l_m, r_m); mel_k = mel(k * sr / N); the Nyquist row k = N/2 is 0.
    A VTLN `warp` != 1 moves l_m, c_m and r_m (the module docstring).
    """
    check_warp(cfg, warp)
    f32 = np.float32
    n_fft = cfg.padded_window_size
    num_fft_bins = n_fft // 2
    mel_lo, mel_hi = _mel32(cfg.low_freq), _mel32(cfg.nyquist_high_freq)
    delta = f32((mel_hi - mel_lo) / f32(cfg.num_mel_bins + 1))
    b = np.arange(cfg.num_mel_bins, dtype=f32)[None, :]  # [1, M]
    left = mel_lo + b * delta
    center = mel_lo + (b + f32(1)) * delta
    right = mel_lo + (b + f32(2)) * delta
    if warp != 1.0:
        left, center, right = (_vtln_warp_mel(e, cfg, warp) for e in (left, center, right))
    bin_width = f32(f32(cfg.sample_rate) / f32(n_fft))
    mel = _mel32(bin_width * np.arange(num_fft_bins, dtype=f32))[:, None]  # [N/2, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = (mel - left) / (center - left)
        down = (right - mel) / (right - center)
    weights = np.where(mel <= center, up, down)
    weights = np.where((mel > left) & (mel < right), weights, f32(0)).astype(np.float64)
    return np.concatenate([weights, np.zeros((1, cfg.num_mel_bins))], axis=0)


@functools.lru_cache(maxsize=32)
def _cached_tensors(
    cfg: FbankConfig, device: torch.device, fft_dtype: torch.dtype, warps: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(window [w] float32, mel banks [len(warps), N/2+1, M] in fft_dtype) on `device`."""
    window = torch.from_numpy(_window_np(cfg)).to(device=device, dtype=torch.float32)
    banks = np.stack([mel_banks(cfg, w) for w in warps])
    return window, torch.from_numpy(banks).to(device=device, dtype=fft_dtype)


def _fft_dtype(device: torch.device) -> torch.dtype:
    # float64 FFT + mel projection (see module docstring, point 2); MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def fbank(
    waves: torch.Tensor,
    lengths: torch.Tensor,
    cfg: FbankConfig,
    seeds: Sequence[int] | None = None,
    warps: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log mel filterbanks of a padded batch, on the device of `waves`.

    waves: [B, N_max] float32, int16 sample scale (not divided by 32768); lengths: [B].
    Returns feats [B, T_max, num_mel_bins] float32 (rows >= num_frames[b] are zero) and
    num_frames [B] int64 on the same device. With dither, row b's noise comes from a CPU
    generator seeded with seeds[b], so an utterance gets the same features in any batch and on
    any device; without seeds, from torch's global generator. warps: row b's VTLN warp factor
    (None: 1 for every row).
    """
    if waves.dim() != 2:
        raise ValueError(f"waves must be [B, N], got {tuple(waves.shape)}")
    device = waves.device
    waves = waves.to(torch.float32)
    lengths = torch.as_tensor(lengths, device=device, dtype=torch.int64)
    B = waves.shape[0]
    w, s = cfg.window_size, cfg.window_shift
    frames_per_utt = num_frames(lengths, cfg)  # [B]
    T = int(frames_per_utt.max().item()) if B > 0 else 0
    unique = tuple(sorted({float(a) for a in warps})) if warps is not None else (1.0,)
    window, banks = _cached_tensors(cfg, device, _fft_dtype(device), unique)
    if len(unique) > 1:  # [B, N/2+1, M]: each row's own banks (index built on the host)
        banks = banks[torch.tensor([unique.index(float(a)) for a in warps], device=device)]
    else:
        banks = banks[0]
    if T == 0:
        return waves.new_zeros(B, 0, cfg.num_mel_bins), frames_per_utt

    t = torch.arange(T, device=device)
    start = t * s if cfg.snip_edges else t * s + s // 2 - w // 2  # [T]
    idx = start[:, None] + torch.arange(w, device=device)[None, :]  # [T, w]
    idx = idx.unsqueeze(0).expand(B, T, w)  # [B, T, w]
    n = lengths.clamp(min=1)[:, None, None]  # [B, 1, 1]
    if not cfg.snip_edges:
        # Kaldi's repeated reflection (-1 -> 0, n -> n-1) is periodic with period 2n.
        m = torch.remainder(idx, 2 * n)
        idx = torch.where(m >= n, 2 * n - 1 - m, m)
    # Padding frames (t >= num_frames) read clamped valid samples and are zeroed at the end.
    idx = torch.minimum(idx, n - 1).clamp(min=0)
    x = torch.gather(waves, 1, idx.reshape(B, T * w)).view(B, T, w)  # [B, T, w]

    if cfg.dither != 0.0:
        if seeds is None:
            noise = torch.randn(x.shape, device=device, dtype=x.dtype)
        else:
            # Each utterance's noise is drawn for its own frames only, then padded: torch's
            # CPU randn redraws the last 16 values of a draw whose size is not a multiple of
            # 16, so a draw sized by the batch's longest utterance gave an utterance other
            # noise in its last frame depending on the utterances batched with it.
            noise = x.new_zeros(x.shape)
            for b, (seed, nf) in enumerate(zip(seeds, frames_per_utt.tolist(), strict=True)):
                gen = torch.Generator().manual_seed(int(seed))
                noise[b, :nf] = torch.randn((nf, w), generator=gen).to(device)
        x = x + cfg.dither * noise
    if cfg.remove_dc_offset:
        x = x - x.mean(dim=-1, keepdim=True)
    if cfg.preemph_coeff != 0.0:
        c = cfg.preemph_coeff
        x = torch.cat([x[..., :1] * (1.0 - c), x[..., 1:] - c * x[..., :-1]], dim=-1)
    x = x * window  # [B, T, w]

    spec = torch.fft.rfft(x.to(banks.dtype), n=cfg.padded_window_size, dim=-1)  # [B, T, N/2+1]
    power = spec.real.square() + spec.imag.square()
    feats = power @ banks  # [B, T, M]
    if cfg.use_log_fbank:
        feats = feats.clamp(min=FLT_EPSILON).log()
    valid = t[None, :] < frames_per_utt[:, None]  # [B, T]
    feats = feats.masked_fill(~valid[..., None], 0.0)
    return feats.to(torch.float32), frames_per_utt


def _as_tensor(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.dim() != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(t.shape)}")
    return t.to(torch.float32)


def fbank_utterances(
    waves: Sequence,
    cfg: FbankConfig,
    device: str | torch.device = "cpu",
    batch_seconds: float = 200.0,
    seeds: Sequence[int] | None = None,
    warps: Sequence[float] | None = None,
) -> list[torch.Tensor]:
    """Fbank of many 1-D waveforms; returns CPU float32 tensors [T_i, D] in input order.

    Utterances are sorted by length (longest first) and grouped so each batch holds at most
    `batch_seconds` of padded audio (B * N_max / sample_rate), which bounds device memory.
    seeds: one dither seed per waveform; warps: one VTLN warp factor per waveform (see `fbank`).
    """
    tensors = [_as_tensor(x) for x in waves]
    order = sorted(range(len(tensors)), key=lambda i: -tensors[i].numel())
    budget = max(1, int(batch_seconds * cfg.sample_rate))
    out: list[torch.Tensor | None] = [None] * len(tensors)
    i = 0
    while i < len(order):
        longest = max(1, tensors[order[i]].numel())
        size = max(1, budget // longest)  # sorted descending, so the first one is the longest
        batch = order[i : i + size]
        i += size
        lens = torch.tensor([tensors[j].numel() for j in batch], dtype=torch.int64)
        padded = torch.zeros(len(batch), int(lens.max()), dtype=torch.float32)
        for row, j in enumerate(batch):
            padded[row, : lens[row]] = tensors[j]
        batch_seeds = None if seeds is None else [seeds[j] for j in batch]
        batch_warps = None if warps is None else [warps[j] for j in batch]
        feats, nf = fbank(padded.to(device), lens.to(device), cfg, seeds=batch_seeds,
                          warps=batch_warps)
        feats, nf = feats.cpu(), nf.cpu()
        for row, j in enumerate(batch):
            out[j] = feats[row, : nf[row]].clone()
    return out  # type: ignore[return-value]
