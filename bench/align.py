"""GMM forced-alignment speed in seconds of audio per second (x real time), timed in the align
stage's own function, asr_kd.hmm.train_mono.align_batched: utterances batched by length, one
DiagGmm.log_likelihoods matmul per batch for every pdf, then batched Viterbi and traceback
over the utterances' training graphs (viterbi_align).

What is real and what is not:
- audio, transcripts and graphs are real: the LibriSpeech hour in ../shared/corpora (297
  utterances, 63 min; --quick: the first 3). Lexicon from cmudict without stress marks (read by
  local/fsdd.py's read_cmudict); words cmudict lacks become <UNK>, pronounced SPN (Kaldi's
  spoken noise). The lang dir comes from asr_kd.lang.prepare_lang (3-state phones, 5-state
  silence/SPN), the graphs from TrainingGraphCompiler (compile_graphs) with a monophone
  transition model, as the mono stages build them.
- features are real: fbank (fbank_utterances), per-utterance mean normalisation, MFCC + deltas
  (GmmFeatureConfig: 39 dims), the GMM stages' features, already on the device.
- the GMM is synthetic: 2000 pdfs x 16 Gaussians (a triphone system's size; --quick: 256 x 2),
  means and variances drawn around the data's. align_batched computes every pdf's likelihood on
  every frame, and the Viterbi's cost is set by the graphs, not by which pdf each arc names, so
  the monophone graphs (whose pdf ids are < 2000) time as a 2000-pdf system's would.
Rows: graph compilation (kaldifst on the CPU, once per transcript; not part of the target),
the likelihoods alone over all frames, and align_batched as a whole.

Target on an H100: align_batched >= 10,000x real time.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch
from common import (
    Report,
    librispeech,
    make_lang,
    parse_args,
    peak_memory_gib,
    pick_device,
    reset_memory,
    time_per_call,
)

from asr_kd.data.audio import read_audio
from asr_kd.features import FbankConfig, apply_cmvn, cmvn_stats, fbank_utterances
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.train_mono import AlignConfig, align_batched, compile_graphs
from asr_kd.hmm.transitions import TransitionModel, monophone_tuples


def synthetic_gmm(x: torch.Tensor, num_pdfs: int, num_gauss: int) -> DiagGmm:
    """Random Gaussians around the data's mean and variance, random mixture weights."""
    g = torch.Generator().manual_seed(0)
    mu, var = x.mean(0).cpu(), x.var(0).cpu()
    shape = (num_pdfs, num_gauss, x.shape[1])
    means = mu + var.sqrt() * torch.randn(shape, generator=g)
    variances = var * (0.5 + torch.rand(shape, generator=g))
    log_weights = torch.log_softmax(torch.randn(num_pdfs, num_gauss, generator=g), dim=-1)
    return DiagGmm(means, variances, log_weights).to(x.device)


def main():
    args = parse_args(__doc__, lambda p: p.add_argument(
        "--utts", type=int, default=None,
        help="the first N utterances only (a CPU takes minutes per pass over all 297)"))
    device = pick_device(args.device)
    rep = Report("align", device, args)
    utts = librispeech(3 if args.quick else args.utts)
    num_pdfs, num_gauss = (256, 2) if args.quick else (2000, 16)
    timing = {"warmup": 1, "min_seconds": 0.3 if args.quick else 3.0}

    cfg = FbankConfig(sample_rate=16000, num_mel_bins=40, dither=0.0)
    waves = [read_audio(str(path))[0] for _, path, _ in utts]
    audio_s = sum(len(w) for w in waves) / cfg.sample_rate
    feature = GmmFeatureConfig()
    feats = {u: feature.apply(apply_cmvn(x, cmvn_stats(x)).float()).to(device)
             for (u, _, _), x in zip(utts, fbank_utterances(waves, cfg, device))}

    with tempfile.TemporaryDirectory(prefix="bench_align_") as tmp:  # lang reads L.fst there
        texts = {u: words for u, _, words in utts}
        lang, texts = make_lang(texts, Path(tmp))
        tm = TransitionModel(lang.topo, monophone_tuples(lang.topo, lang.topo.phones))
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar would garble the table
            graphs = compile_graphs(lang, tm, texts, "LibriSpeech transcripts")
        compile_s = time.perf_counter() - t0
    if tm.num_pdfs > num_pdfs:
        raise SystemExit(f"the graphs use {tm.num_pdfs} pdfs; the GMM has only {num_pdfs}")
    rep.add(step="compile_graphs (kaldifst, CPU)", device="cpu", audio_s=audio_s,
            seconds=compile_s, x_real_time=audio_s / compile_s, aligned=None)

    x = torch.cat(list(feats.values()))
    model = GmmHmm(tm, synthetic_gmm(x, num_pdfs, num_gauss), feature)
    gmm_name = f"{num_pdfs} pdfs x {num_gauss} Gaussians"
    reset_memory(device)
    sec = time_per_call(lambda: model.gmm.log_likelihoods(x), device, **timing)
    rep.add(step=f"DiagGmm.log_likelihoods ({gmm_name})", device=device.type, audio_s=audio_s,
            seconds=sec, x_real_time=audio_s / sec, aligned=None,
            peak_gib=peak_memory_gib(device))
    result = {}

    def align():
        result.update(align_batched(model, graphs, feats, AlignConfig()))

    reset_memory(device)
    sec = time_per_call(align, device, **timing)
    rep.add(step=f"align_batched ({gmm_name} + Viterbi)", device=device.type, audio_s=audio_s,
            seconds=sec, x_real_time=audio_s / sec, aligned=f"{len(result)}/{len(utts)}",
            peak_gib=peak_memory_gib(device))
    states = sum(g.num_states for g in graphs.values())
    arcs = sum(g.num_arcs for g in graphs.values())
    rep.note(f"real audio and graphs: {len(utts)} LibriSpeech utterances, {audio_s / 60:.1f} min, "
             f"{x.shape[0]:,} frames; graphs {states:,} states / {arcs:,} arcs in all "
             f"({len(lang.topo.phones)} phones, {tm.num_pdfs} monophone pdfs, "
             f"{sum(w == '<UNK>' for ws in texts.values() for w in ws)} <UNK> tokens); "
             f"synthetic GMM ({gmm_name}, {x.shape[1]}-dim MFCC + deltas)")
    rep.finish()


if __name__ == "__main__":
    main()
