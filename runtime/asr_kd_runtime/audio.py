"""Reading audio files and resampling them, without torch.

Samples come back as float32 in int16 scale (the integer sample values as floats), which is what
Kaldi's fbank code expects: its dither and energy floor are tuned to that range. libsndfile reads
WAV, FLAC, NIST SPHERE and MP3 (libsndfile >= 1.1).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import soundfile as sf

# Streamed WAV writers (sox/ffmpeg to a pipe) cannot seek back to fill in the data size, so they
# leave 0 or a huge placeholder; such a header says nothing about truncation.
_STREAMING_DATA_SIZE = 0x7FFF0000

# torchaudio.functional.resample's defaults (sinc_interp_hann), which `resample` reproduces.
LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


class AudioError(ValueError):
    """Audio that cannot be read or is not usable mono speech."""


def _nist_sample_count(source) -> int | None:
    """`sample_count` of a NIST SPHERE header (TIMIT, WSJ), or None where it has none."""
    if isinstance(source, io.BytesIO):
        head = source.getvalue()[:4096]
    else:
        with open(source, "rb") as fh:
            head = fh.read(4096)
    m = re.search(rb"^sample_count\s+-i\s+(\d+)\s*$", head.split(b"end_head")[0], re.MULTILINE)
    return int(m.group(1)) if m else None


def _check_truncated(f: sf.SoundFile, name: str, source) -> None:
    """Reject WAV and NIST SPHERE files holding fewer samples than their header says.

    libsndfile silently reads what is there, so a half-copied file would otherwise pass.
    """
    if f.format == "NIST":
        declared = _nist_sample_count(source)
        if declared is not None and f.frames < declared:
            raise AudioError(f"audio '{name}': truncated: header declares {declared} samples "
                             f"but the file holds {f.frames}")
        return
    if f.format not in ("WAV", "WAVEX", "RF64"):
        return
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info, re.MULTILINE)
    if m:
        declared, actual = int(m.group(1)), int(m.group(2))
        if 0 < declared < _STREAMING_DATA_SIZE and actual < declared:
            raise AudioError(
                f"audio '{name}': truncated: header declares {declared} bytes of "
                f"samples but the file holds {actual}"
            )


def read_audio_source(source, name: str) -> tuple[np.ndarray, int]:
    """Mono samples (int16-scale float32) and rate of a file path or file-like `source`;
    errors name `name`."""
    try:
        with sf.SoundFile(source) as f:
            _check_truncated(f, name, source)
            data = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError) as e:
        reason = getattr(e, "error_string", None) or str(e)
        raise AudioError(f"audio '{name}': cannot read: {reason}") from None
    if data.shape[1] != 1:
        raise AudioError(f"audio '{name}': has {data.shape[1]} channels; expected mono")
    if data.shape[0] == 0:
        raise AudioError(f"audio '{name}': contains no samples")
    # float32 in [-1, 1) times 2^15 is exact for 16-bit sources.
    return data[:, 0] * np.float32(32768.0), sr


def read_audio(path) -> tuple[np.ndarray, int]:
    """An audio file (WAV, FLAC, SPHERE, MP3) as mono int16-scale float32 samples and its rate;
    AudioError names the file when it is missing, empty, unreadable or not mono."""
    path = str(path)
    if not Path(path).exists():
        raise AudioError(f"audio '{path}': file does not exist")
    try:  # libsndfile would say only "System error" or "Format not recognised"
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as e:
        raise AudioError(f"audio '{path}': cannot read: {e.strerror}") from None
    if empty:
        raise AudioError(f"audio '{path}': file is empty (0 bytes)")
    return read_audio_source(path, path)


def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """torchaudio's windowed-sinc (Hann) kernel for orig -> new (both divided by their gcd):
    [new, 2 * width + orig] filter taps, one row per output phase, and the width."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None] / orig
    t = (np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx) * base
    t = np.clip(t, -LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    return kernel * window * (base / orig), width


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited (windowed sinc) resampling, as Kaldi's --allow-{down,up}sample does it;
    the same filter and output length as torchaudio.functional.resample's defaults, computed
    in float64 and returned as float32."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    g = math.gcd(int(from_rate), int(to_rate))
    orig, new = int(from_rate) // g, int(to_rate) // g
    kernel, width = _sinc_kernel(orig, new)
    x = np.asarray(samples, dtype=np.float64)
    padded = np.pad(x, (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    out = (frames @ kernel.T).reshape(-1)
    return out[: math.ceil(new * len(x) / orig)].astype(np.float32)
