"""Reading the audio that wav.scp points at: files as the runtime reads them
(asr_kd_runtime.audio: int16-scale float32 samples, named errors, torchaudio's resampling), and
shell pipes, segments and speed perturbation here."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator

import numpy as np
from asr_kd_runtime.audio import AudioError, read_audio_source, resample
from asr_kd_runtime.audio import read_audio as read_audio_file

from asr_kd.data.datadir import DataDir, data_error, is_pipe, raise_problem

# Segments may end a little past the audio (rounding in the times); like Kaldi's extract-segments
# --max-overshoot, a small overshoot is clipped and a larger one is an error.
MAX_OVERSHOOT_S = 0.5

__all__ = ["AudioError", "iter_utterance_audio", "read_audio", "resample"]


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
        return read_audio_source(io.BytesIO(proc.stdout), spec)
    return read_audio_file(spec)


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
