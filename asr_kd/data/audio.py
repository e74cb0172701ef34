"""Reading the audio that wav.scp points at.

Samples come back as float32 in int16 scale (the integer sample values as floats), which is what
Kaldi's fbank/MFCC code expects: its dither and energy floor are tuned to that range.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from asr_kd.data.datadir import DataDir, data_error, is_pipe, raise_problem

# Segments may end a little past the audio (rounding in the times); like Kaldi's extract-segments
# --max-overshoot, a small overshoot is clipped and a larger one is an error.
MAX_OVERSHOOT_S = 0.5

# Streamed WAV writers (sox/ffmpeg to a pipe) cannot seek back to fill in the data size, so they
# leave 0 or a huge placeholder; such a header says nothing about truncation.
_STREAMING_DATA_SIZE = 0x7FFF0000


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


def _read(source, name: str) -> tuple[np.ndarray, int]:
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


def read_audio(spec: str, allow_pipes: bool = False) -> tuple[np.ndarray, int]:
    """Read a wav.scp value (a WAV/FLAC path, or `<command> |`) as mono int16-scale float32.

    Pipes run through the shell only when `allow_pipes` is set: a data dir from elsewhere could
    otherwise execute arbitrary commands.
    """
    spec = spec.strip()
    if is_pipe(spec):
        cmd = spec[:-1].strip()
        if not allow_pipes:
            raise AudioError(
                f"audio '{spec}': wav.scp entry is a shell pipe; pass --allow-pipes to run it"
            )
        proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
            raise AudioError(
                f"audio '{spec}': command exited with status {proc.returncode}"
                + (f": {err}" if err else "")
            )
        if not proc.stdout:
            raise AudioError(f"audio '{spec}': command produced no output")
        return _read(io.BytesIO(proc.stdout), spec)
    if not Path(spec).exists():
        raise AudioError(f"audio '{spec}': file does not exist")
    try:  # libsndfile would say only "System error" or "Format not recognised"
        with open(spec, "rb") as f:
            empty = not f.read(1)
    except OSError as e:
        raise AudioError(f"audio '{spec}': cannot read: {e.strerror}") from None
    if empty:
        raise AudioError(f"audio '{spec}': file is empty (0 bytes)")
    return _read(spec, spec)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited (windowed sinc) resampling, as Kaldi's --allow-{down,up}sample does."""
    import torch
    import torchaudio.functional as F  # imported here: it takes seconds

    return F.resample(torch.from_numpy(samples), from_rate, to_rate).numpy()


def iter_utterance_audio(
    datadir: DataDir,
    allow_pipes: bool = False,
    sample_rate: int | None = None,
    resample_audio: bool = False,
    report=raise_problem,
) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield `(utt, samples, sample_rate)` for every utterance in sorted order.

    A recording with a speed f in reco2speed is perturbed as sox's `speed f` does it: its
    samples are taken as recorded at round(sr*f) Hz and resampled to sr, so pitch and tempo
    both change by f and N samples become about N/f. Segments are then cut from the perturbed
    recording as samples[round(start*sr):round(end*sr)]. The last recording read is cached,
    since the segments of one recording are adjacent in sorted order. With `sample_rate`, a
    recording at another rate is resampled to it if `resample_audio` (in the same resampling as
    the speed change), else it is a problem. Problems name the wav.scp line and go to `report`
    (default: raised); an utterance with a problem is skipped.
    """
    wav_p = datadir.path / "wav.scp"
    cached: tuple[str, np.ndarray | str, int] | None = None  # (rec, samples or problem, rate)
    for utt in datadir.utts:
        rec = datadir.recording_of(utt)
        if rec not in datadir.wav:
            problem = f"recording '{rec}' is not in wav.scp"
        else:
            if cached is None or cached[0] != rec:
                cached = (rec, *_read_recording(datadir.wav[rec], allow_pipes, sample_rate,
                                                resample_audio, datadir.speed_of(rec)))
            _, samples, sr = cached
            problem = samples if isinstance(samples, str) else None
        if problem is None and datadir.segments is not None:
            _, start, end = datadir.segments[utt]
            b, e = round(start * sr), round(end * sr)
            n = len(samples)
            if e > n + MAX_OVERSHOOT_S * sr or b >= n:
                problem = (f"segment {start}-{end} s lies beyond the end of recording '{rec}' "
                           f"({n / sr:.3f} s)")
            elif min(e, n) <= b:
                problem = f"segment {start}-{end} s is shorter than one sample"
            samples = samples[b:min(e, n)]
        if problem is not None:
            report(data_error(wav_p, datadir.line("wav.scp", rec), problem, utt=utt))
            continue
        yield utt, samples, sr


def _read_recording(spec: str, allow_pipes: bool, sample_rate: int | None, resample_audio: bool,
                    speed: float = 1.0) -> tuple[np.ndarray | str, int | None]:
    """(samples, rate) of one wav.scp entry at `speed` and at `sample_rate` if given, or
    (problem, None)."""
    try:
        samples, sr = read_audio(spec, allow_pipes=allow_pipes)
    except AudioError as e:
        return str(e), None
    to_rate = sr
    if sample_rate is not None and sr != sample_rate:
        if not resample_audio:
            return (f"audio '{spec}': sample rate {sr} Hz, expected {sample_rate} Hz "
                    "(resampling is off)"), None
        to_rate = sample_rate
    # sox `speed`: the samples as if recorded at sr*speed, resampled to the rate wanted.
    from_rate = sr if speed == 1.0 else round(sr * speed)
    if from_rate < 1:
        return f"audio '{spec}': speed {speed} is too slow for {sr} Hz audio", None
    if from_rate != to_rate:
        samples = resample(samples, from_rate, to_rate)
    return samples, to_rate
