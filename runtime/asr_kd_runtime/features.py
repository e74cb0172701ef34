"""Features as the recipes compute them: Kaldi fbank (kaldi-native-fbank) and CMVN.

`fbank.json` holds asr_kd.features.FbankConfig's fields; they map one to one onto
kaldi-native-fbank's options. Dither is the config's (0 in every recipe): with dither the
features, and so the hypotheses, would vary from run to run. CMVN subtracts the mean (Kaldi's
apply-cmvn without --norm-vars, the recipes' setting), computed in float64 and applied in
float32 as Kaldi does.
"""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np

from asr_kd_runtime.audio import AudioError, resample


def fbank_options(settings: dict) -> knf.FbankOptions:
    opts = knf.FbankOptions()
    fo, mo = opts.frame_opts, opts.mel_opts
    fo.samp_freq = float(settings["sample_rate"])
    fo.frame_length_ms = float(settings["frame_length_ms"])
    fo.frame_shift_ms = float(settings["frame_shift_ms"])
    fo.dither = float(settings["dither"])
    fo.preemph_coeff = float(settings["preemph_coeff"])
    fo.remove_dc_offset = bool(settings["remove_dc_offset"])
    fo.window_type = settings["window_type"]
    fo.round_to_power_of_two = bool(settings["round_to_power_of_two"])
    fo.snip_edges = bool(settings["snip_edges"])
    mo.num_bins = int(settings["num_mel_bins"])
    mo.low_freq = float(settings["low_freq"])
    mo.high_freq = float(settings["high_freq"])
    opts.use_log_fbank = bool(settings["use_log_fbank"])
    opts.use_energy = False
    return opts


class FbankStream:
    """Kaldi fbank over audio that arrives in pieces (all at once is one piece)."""

    def __init__(self, settings: dict):
        self.rate = int(settings["sample_rate"])
        self.fbank = knf.OnlineFbank(fbank_options(settings))
        self.taken = 0

    def accept(self, samples: np.ndarray) -> None:
        self.fbank.accept_waveform(self.rate, np.asarray(samples, dtype=np.float32))

    def finish(self) -> None:
        self.fbank.input_finished()

    def take(self) -> np.ndarray:
        """The frames ready since the last call, [N, F] float32."""
        n = self.fbank.num_frames_ready
        frames = [self.fbank.get_frame(i) for i in range(self.taken, n)]
        self.taken = n
        if not frames:
            return np.zeros((0, self.fbank.dim), dtype=np.float32)
        return np.asarray(frames, dtype=np.float32)


def at_rate(samples: np.ndarray, rate: int, settings: dict, name: str) -> np.ndarray:
    """`samples` at the features' sample rate (resampled if the recording has another)."""
    want = int(settings["sample_rate"])
    if rate == want:
        return samples
    if rate <= 0:
        raise AudioError(f"audio '{name}': bad sample rate {rate}")
    return resample(samples, rate, want)


def compute_fbank(samples: np.ndarray, settings: dict, name: str) -> np.ndarray:
    """[T, F] fbank of one utterance already at the features' rate; AudioError names it if it
    is shorter than one frame."""
    stream = FbankStream(settings)
    stream.accept(samples)
    stream.finish()
    feats = stream.take()
    if len(feats) == 0:
        raise AudioError(f"audio '{name}': shorter than one frame "
                         f"({len(samples)} samples at {stream.rate} Hz)")
    return feats


def cmvn_stats(feats: np.ndarray) -> np.ndarray:
    """Kaldi CMVN stats [2, F + 1] (float64) of one matrix; a speaker's are the sum of its
    utterances'."""
    x = np.asarray(feats, dtype=np.float64)
    stats = np.zeros((2, x.shape[1] + 1))
    stats[0, :-1], stats[0, -1], stats[1, :-1] = x.sum(0), len(x), np.square(x).sum(0)
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Mean normalisation with stats [2, F + 1]."""
    dim = feats.shape[1]
    if stats.shape[1] != dim + 1 or stats[0, dim] < 1:
        raise ValueError(f"CMVN stats of shape {stats.shape} (count {stats[0, -1]}) do not fit "
                         f"{dim}-dim features")
    offset = -stats[0, :dim] / stats[0, dim]
    return (feats + offset.astype(np.float32)).astype(np.float32)
