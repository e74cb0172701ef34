"""Fbank speed in seconds of audio per second (x real time): asr_kd's fbank on the GPU and the
CPU, and kaldi-native-fbank (knf, C++) on the CPU, on the same real audio, and how far apart
their features are.

Audio: the LibriSpeech hour in ../shared/corpora (297 utterances, 63 min, 16 kHz FLAC; --quick:
the first 4 utterances), read as the feature stage reads it (int16-scale float32). Options:
Kaldi's defaults with 40 mel bins and no dither (FbankConfig(sample_rate=16000)).

Rows:
- `fbank`: asr_kd.features.fbank on padded batches already on the device, grouped as
  fbank_utterances groups them (longest first, <= 200 s of padded audio per batch): the
  computation alone.
- `fbank_utterances`: the feature stage's own call, CPU waveforms in, CPU features out
  (padding, host <-> device copies included).
- `knf OnlineFbank`: per utterance from the OnlineFbank's construction to input_finished(),
  where knf computes the frames; the samples are made a Python list beforehand, and reading
  the frames back out of knf is not timed, so knf is not charged for its Python binding.
On the CPU, asr_kd runs with torch's threads (shown with the device) and again with one thread
like knf. max_abs_diff_vs_knf: the largest |ours - knf| over every frame and bin.

Targets: on an H100 >= 200,000x real time; on the CPU at least as fast as knf while matching it.
"""

from __future__ import annotations

import time

import kaldi_native_fbank as knf
import numpy as np
import torch
from common import Report, librispeech, parse_args, pick_device, sync, time_per_call

from asr_kd.data.audio import read_audio
from asr_kd.features import FbankConfig, fbank, fbank_utterances

BATCH_SECONDS = 200.0  # fbank_utterances' default


def padded_batches(waves, cfg: FbankConfig, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """fbank_utterances' grouping: longest first, each batch <= BATCH_SECONDS padded."""
    waves = sorted(waves, key=len, reverse=True)
    budget, out, i = int(BATCH_SECONDS * cfg.sample_rate), [], 0
    while i < len(waves):
        batch = waves[i:i + max(1, budget // len(waves[i]))]
        i += len(batch)
        padded = torch.zeros(len(batch), len(batch[0]))
        for row, w in enumerate(batch):
            padded[row, :len(w)] = torch.from_numpy(w)
        out.append((padded.to(device), torch.tensor([len(w) for w in batch], device=device)))
    return out


def knf_options(cfg: FbankConfig):
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = cfg.sample_rate
    opts.frame_opts.dither = cfg.dither
    opts.frame_opts.snip_edges = cfg.snip_edges
    opts.mel_opts.num_bins = cfg.num_mel_bins
    return opts


def knf_fbank(waves, cfg: FbankConfig, min_seconds: float) -> tuple[float, list[np.ndarray]]:
    """(seconds per pass over all waves, features of the last pass)."""
    opts, lists = knf_options(cfg), [w.tolist() for w in waves]
    spent, passes = 0.0, 0
    while passes == 0 or spent < min_seconds:
        computed = []
        for x in lists:
            t0 = time.perf_counter()
            f = knf.OnlineFbank(opts)
            f.accept_waveform(cfg.sample_rate, x)
            f.input_finished()
            spent += time.perf_counter() - t0
            computed.append(f)
        passes += 1
    feats = [np.stack([f.get_frame(i) for i in range(f.num_frames_ready)]) for f in computed]
    return spent / passes, feats


def max_diff(ours: list[torch.Tensor], ref: list[np.ndarray]) -> float:
    for a, b in zip(ours, ref):
        if a.shape != b.shape:
            raise RuntimeError(f"frame count differs from knf: {tuple(a.shape)} vs {b.shape}")
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(ours, ref))


def main():
    args = parse_args(__doc__)
    device = pick_device(args.device)
    rep = Report("features", device, args)
    utts = librispeech(4 if args.quick else None)
    waves, rates = zip(*(read_audio(str(path)) for _, path, _ in utts))
    if set(rates) != {16000}:
        raise SystemExit(f"expected 16 kHz audio, got rates {sorted(set(rates))}")
    cfg = FbankConfig(sample_rate=16000, num_mel_bins=40, dither=0.0)
    audio_s = sum(len(w) for w in waves) / cfg.sample_rate
    timing = {"warmup": 1, "min_seconds": 0.3 if args.quick else 2.0}
    knf_sec, ref = knf_fbank(waves, cfg, timing["min_seconds"])

    threads = torch.get_num_threads()
    runs = [(torch.device("cuda"), threads)] if device.type == "cuda" else []
    runs += [(torch.device("cpu"), threads)] + ([(torch.device("cpu"), 1)] if threads > 1 else [])
    for dev, n in runs:
        torch.set_num_threads(n)
        batches = padded_batches(waves, cfg, dev)

        def run_batches(batches=batches):
            for x, lengths in batches:
                fbank(x, lengths, cfg)

        def run_utterances(dev=dev):
            return fbank_utterances(waves, cfg, dev, batch_seconds=BATCH_SECONDS)

        where = f"{dev.type}, {n} thread{'s' * (n > 1)}" if dev.type == "cpu" else dev.type
        sec = time_per_call(run_batches, dev, **timing)
        rep.add(impl="asr_kd fbank (batches on device)", device=where, audio_s=audio_s,
                seconds=sec, x_real_time=audio_s / sec, max_abs_diff_vs_knf=None)
        sec = time_per_call(run_utterances, dev, **timing)
        ours = run_utterances()
        sync(dev)
        rep.add(impl="asr_kd fbank_utterances (CPU in/out)", device=where, audio_s=audio_s,
                seconds=sec, x_real_time=audio_s / sec, max_abs_diff_vs_knf=max_diff(ours, ref))
        del batches
    torch.set_num_threads(threads)
    rep.add(impl="knf OnlineFbank", device="cpu, 1 thread", audio_s=audio_s, seconds=knf_sec,
            x_real_time=audio_s / knf_sec, max_abs_diff_vs_knf=None)
    rep.note(f"real audio: {len(waves)} LibriSpeech utterances, {audio_s / 60:.1f} min, 16 kHz; "
             f"40 bins, no dither; knf {getattr(knf, '__version__', '?')}")
    rep.finish()


if __name__ == "__main__":
    main()
