"""Decoder speed: asr_kd's torch decoder on the device against kaldi-decoder's FasterDecoder
(the reference) on one CPU core, same graph, acoustic scale, beam and max-active.

What is real and what is not:
- the graph is real: HCLG (monophone transition model, 3-state phones, 5-state silence) built by
  asr_kd.decode.graph.make_hclg from a cmudict lexicon (stress marks dropped; words cmudict lacks
  become <UNK> = SPN) and an n-gram LM. By default the LM is our Kneser-Ney trigram over the
  LM text in ../shared/corpora (the LibriSpeech hour's transcripts and lm_text/: 1,214
  sentences; 5,713 entries in words.txt): 951,165 states and 2,077,154 arcs (--quick: the first
  100 sentences). The target's >= 10M arcs (below) need a large LM: pass one with --arpa (e.g.
  OpenSLR 11's 3-gram.pruned.1e-7.arpa; kaldilm's arpa2fst skips the n-grams of words cmudict
  lacks).
  --work-dir keeps the graph for the next run.
- the acoustic scores are synthetic, shaped like a DNN's: for a real sentence (LibriSpeech
  transcripts) the frames walk the pdfs of its phones' HMM states (2-5 frames per state, optional
  silence between words), and each frame's scores are log_softmax(N(0, 2^2) noise + 6 on the
  walked pdf), so the right pdf is on top in about two thirds of the frames.
- --recipe-dir DIR (e.g. recipes/librispeech_subset after its stage 8): everything real
  instead: the recipe's exp/graph (its HCLG read as binary, never as text), the scores of its
  model exp/SYSTEM/final.pt on data/DATA's features (default: the ensemble on dev_clean), and
  those utterances' transcripts for the WER.
Rows: graph building (CPU, once), the torch decoder on a batch (after one warm-up batch), the
reference on the same utterances one by one. RTFx = seconds of audio / seconds of search.

Target on an H100: torch decoder RTFx >= 20,000 on a >= 10M-arc graph with batch >= 64.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    CORPORA,
    Report,
    librispeech,
    make_lang,
    parse_args,
    peak_memory_gib,
    pick_device,
    reset_memory,
    sync,
    with_unk,
)

from asr_kd.decode import DecodeConfig, DeviceGraph, ReferenceDecoder, TorchDecoder
from asr_kd.decode.graph import GraphConfig, make_hclg
from asr_kd.hmm.transitions import TransitionModel, monophone_tuples
from asr_kd.lang import load_lang
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.score.wer import compute_wer
from asr_kd.utils.fst import read_fst, read_fst_arrays, read_symbols, write_fst

LM_TEXT = CORPORA / "librispeech_subset" / "lm_text"


def add_args(p):
    p.add_argument("--batch", type=int, default=64, help="utterances per torch decoder call")
    p.add_argument("--ref-utts", type=int, default=16,
                   help="utterances the (slow) reference decodes for its RTFx and the agreement")
    p.add_argument("--arpa", type=Path, default=None, help="an ARPA LM instead of our trigram")
    p.add_argument("--order", type=int, default=3, help="n-gram order of our LM")
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/asr_kd_bench_decode"),
                   help="the lang dir and HCLG are built here once and reused")
    p.add_argument("--recipe-dir", type=Path, default=None,
                   help="real scores instead: a recipe's graph (exp/graph), the model of --system "
                        "and its features of --data (e.g. recipes/librispeech_subset)")
    p.add_argument("--system", default="ensemble", help="with --recipe-dir: exp/SYSTEM/final.pt")
    p.add_argument("--data", default="dev_clean", help="with --recipe-dir: data/DATA")


def lm_sentences(limit: int | None) -> list[list[str]]:
    text = [words for _, _, words in librispeech()]
    for f in sorted(LM_TEXT.glob("*.txt")):
        text += [line.split()[1:] for line in f.read_text().splitlines() if line.split()]
    return text[:limit]


def build_graph(args, work: Path):
    """(lang, HCLG, transition model, seconds to build); reused from work/ when there."""
    done = work / "graph.json"
    if done.exists() and json.loads(done.read_text()) != _graph_key(args):
        shutil.rmtree(work)
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    reuse = (work / "HCLG.fst").exists() and done.exists()
    lang = load_lang(work / "lang") if reuse else _build_lang(args, work)
    tm = TransitionModel(lang.topo, monophone_tuples(lang.topo, lang.topo.phones))
    if reuse:
        hclg = read_fst(work / "HCLG.fst")
    else:
        hclg = make_hclg(lang, tm, GraphConfig())
        write_fst(hclg, work / "HCLG.fst")
        done.write_text(json.dumps(_graph_key(args)))
    return lang, hclg, tm, time.perf_counter() - t0


def _build_lang(args, work: Path):
    """The lang dir under work/, with G from --arpa or from our LM over the shared text."""
    if args.arpa is not None:  # a lexicon entry for every word of the LM
        texts, arpa = {"words": sorted(_arpa_words(args.arpa))}, str(args.arpa)
    else:  # our LM over the shared text, words cmudict lacks as <UNK>
        sentences = [with_unk(s) for s in lm_sentences(100 if args.quick else None)]
        arpa = str(work / "lm.arpa")
        Path(arpa).write_text(train_kneser_ney(sentences, order=args.order).to_arpa())
        texts = {str(i): s for i, s in enumerate(sentences)}
    with contextlib.redirect_stderr(io.StringIO()):
        lang, _ = make_lang(texts, work, arpa=arpa)
    return lang


def _graph_key(args) -> dict:
    return {"arpa": str(args.arpa), "order": args.order, "quick": args.quick}


def _arpa_words(path: Path) -> set[str]:
    words, in_unigrams = set(), False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                in_unigrams = True
            elif line.startswith("\\"):
                if in_unigrams:
                    break
            elif in_unigrams and line.strip():
                words.add(line.split()[1])
    return words - {"<s>", "</s>", "<unk>", "<UNK>"}


def synthetic_scores(lang, tm: TransitionModel, words: list[str], rng) -> np.ndarray:
    """[T, num_pdfs] DNN-like log-scores along a walk through the words' HMM states."""
    prons = {}
    for w, _, phones in lang.lexicon:
        prons.setdefault(w, phones)
    pdfs_of = {}
    for phone, state, pdf in tm.tuples:
        pdfs_of.setdefault(phone, []).append((state, pdf))
    sil = lang.optional_silence
    unk = lang.words["<UNK>"]
    seq = [sil]
    for w in words:
        seq += prons[lang.words.get(w, unk)]
        if rng.random() < 0.2:
            seq.append(sil)
    seq.append(sil)
    walk = [pdf for p in seq for _, pdf in sorted(pdfs_of[p]) for _ in range(rng.integers(2, 6))]
    z = rng.normal(0.0, 2.0, size=(len(walk), tm.num_pdfs)).astype(np.float32)
    z[np.arange(len(walk)), walk] += 6.0
    return torch.log_softmax(torch.from_numpy(z), dim=-1).numpy()


def recipe_scores(args, device) -> tuple[list[list[str]], list[np.ndarray], int]:
    """The transcripts and the model's decoding scores (log posterior - log prior, as the
    recipe's decode gives them) of the data dir's first --batch + 2 utterances, and num_pdfs."""
    import os

    from asr_kd.acoustic.loading import load_acoustic_model
    from asr_kd.features import as_tensors
    from asr_kd.steps.common import load_dir_feats

    here = Path.cwd()
    os.chdir(args.recipe_dir)  # feats.scp paths are relative to the recipe dir
    try:
        d, feats = load_dir_feats(f"data/{args.data}")
        model = load_acoustic_model(f"exp/{args.system}/final.pt", device)
    finally:
        os.chdir(here)
    utts = d.utts[:args.batch + 2]
    feats_t = as_tensors({u: feats[u] for u in utts})
    with torch.no_grad():
        scored = model.scores([feats_t[u].to(device) for u in utts])
    scores = [ll.float().cpu().numpy() for ll, _ in scored]
    return [d.text[u] for u in utts], scores, scores[0].shape[1]


def main():
    args = parse_args(__doc__, add_args)
    device = pick_device(args.device)
    if args.quick:
        args.batch, args.ref_utts, args.max_active = 4, 4, 500
    rep = Report("decode", device, args)
    if args.recipe_dir is None:
        lang, hclg, tm, build_s = build_graph(args, args.work_dir)
        id2word, num_pdfs, graph_arrays = lang.id2word, tm.num_pdfs, hclg
        rng = np.random.default_rng(0)
        transcripts = [words for _, _, words in librispeech()]
        picks = rng.choice(len(transcripts), size=args.batch + 2)
        texts = [transcripts[i] for i in picks]
        scores = [synthetic_scores(lang, tm, t, rng) for t in texts]
        lm = args.arpa or f"our {args.order}-gram on the shared LibriSpeech LM text"
        source = f"synthetic scores; LM {lm}; {len(lang.words):,} words"
    else:
        t0 = time.perf_counter()
        gdir = args.recipe_dir / "exp/graph"
        hclg = read_fst(gdir / "HCLG.fst")
        graph_arrays = read_fst_arrays(gdir / "HCLG.fst")  # the torch decoder's, without text
        build_s = time.perf_counter() - t0
        id2word = {i: w for w, i in read_symbols(gdir / "words.txt").items()}
        texts, scores, num_pdfs = recipe_scores(args, device)
        source = (f"{args.system}'s scores on {args.data} ({args.recipe_dir}); "
                  f"{len(id2word):,} words")
    graph = DeviceGraph(graph_arrays, device)
    del graph_arrays
    arcs = len(graph.emitting.dst) + len(graph.epsilon.dst)
    rep.add(step="graph (built, or read from --work-dir / the recipe)", device="cpu",
            states=hclg.num_states, arcs=arcs, seconds=build_s)
    warm, batch, texts = scores[:2], scores[2:], texts[2:]
    audio_s = sum(len(s) for s in batch) * 0.01
    cfg = DecodeConfig(beam=args.beam, max_active=args.max_active)

    decoder = TorchDecoder(graph, cfg)
    decoder.decode_batch(warm)
    reset_memory(device)
    sync(device)
    t0 = time.perf_counter()
    ours = decoder.decode_batch(batch)
    sync(device)
    sec = time.perf_counter() - t0
    refs = {str(i): t for i, t in enumerate(texts)}

    def wer_of(hyps):
        keys = [str(i) for i in range(len(hyps))]
        return compute_wer({k: refs[k] for k in keys},
                           {k: [id2word[w] for w in h.words] if h else [] for k, h in
                            zip(keys, hyps)}).wer

    rep.add(step="torch decoder", device=device.type, batch=len(batch), audio_s=audio_s,
            seconds=sec, rtfx=audio_s / sec, wer=wer_of(ours), peak_gib=peak_memory_gib(device))

    ref = ReferenceDecoder(hclg, cfg)
    n = min(args.ref_utts, len(batch))
    t0 = time.perf_counter()
    theirs = ref.decode_batch(batch[:n])
    ref_s = time.perf_counter() - t0
    ref_audio = sum(len(s) for s in batch[:n]) * 0.01
    same = sum(a is not None and b is not None and a.words == b.words
               for a, b in zip(ours[:n], theirs))
    rep.add(step="reference (kaldi-decoder, 1 CPU core)", device="cpu", batch=1,
            audio_s=ref_audio, seconds=ref_s, rtfx=ref_audio / ref_s, wer=wer_of(theirs),
            same_words=f"{same}/{n}")
    rep.note(f"graph: {hclg.num_states:,} states, {arcs:,} arcs; {source}; "
             f"{num_pdfs} pdfs; beam {args.beam}, max-active "
             f"{args.max_active}; speed-up of the torch decoder over the reference: "
             f"{(audio_s / sec) / (ref_audio / ref_s):.1f}x")
    rep.finish()


if __name__ == "__main__":
    main()
