"""Monophone GMM-HMM training, Kaldi's steps/train_mono.sh in torch.

Flat start: every pdf one Gaussian at the global mean/variance, the first alignment divides each
utterance's frames equally along a random path of its training graph. Then `num_iters` rounds of
Viterbi EM: accumulate statistics from the alignment, update GMMs and transition probabilities,
split Gaussians towards `total_gauss` (linearly over `max_iter_inc` iterations), and realign on
the iterations listed in `realign_iters`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr_kd.hmm.align import TrainingGraphCompiler, equal_align, viterbi_align
from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.transitions import TransitionModel, monophone_tuples
from asr_kd.lang import Lang
from asr_kd.utils.fst import FstArrays
from asr_kd.utils.io import write_text
from asr_kd.utils.progress import progress

log = logging.getLogger(__name__)


@dataclass
class AlignConfig:
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    batch_cells: int = 40_000_000  # frames x graph states per Viterbi batch (memory bound)


@dataclass
class MonoConfig:
    num_iters: int = 40
    max_iter_inc: int = 30
    total_gauss: int = 1000
    realign_iters: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12,
                                                              14, 16, 18, 20, 23, 26, 29, 32,
                                                              35, 38])
    power: float = 0.25
    min_split_count: float = 20.0
    min_gauss_occ: float = 10.0
    var_floor: float = 1e-3
    seed: int = 0
    feature: GmmFeatureConfig = field(default_factory=GmmFeatureConfig)
    align: AlignConfig = field(default_factory=AlignConfig)


def word_ids(lang: Lang, utt: str, words: list[str], where: str) -> list[int]:
    ids = []
    for w in words:
        if w not in lang.words:
            raise ValueError(f"{where}: utterance '{utt}': word '{w}' is not in "
                             f"{lang.path / 'words.txt'}")
        ids.append(lang.words[w])
    return ids


def compile_graphs(lang: Lang, tm: TransitionModel, texts: dict[str, list[str]],
                   where: str, ctx: ContextDependency | None = None) -> dict[str, FstArrays]:
    compiler = TrainingGraphCompiler(tm, lang.L(), ctx)
    return {utt: compiler.compile(word_ids(lang, utt, words, where))
            for utt, words in progress(texts.items(), "training graphs", unit="utts")}


def align_batched(model: GmmHmm, graphs: dict[str, FstArrays], feats: dict[str, torch.Tensor],
                  cfg: AlignConfig) -> dict[str, np.ndarray]:
    """Viterbi-align every utterance; batches are formed by length so padding stays small."""
    tid_lp = torch.from_numpy(model.tm.scaled_log_probs(cfg.transition_scale, cfg.self_loop_scale))
    dev = model.gmm.means.device
    tid_lp, tid2pdf = tid_lp.to(dev), torch.from_numpy(model.tm.tid2pdf).clamp_min(0).to(dev)
    utts = sorted(graphs, key=lambda u: feats[u].shape[0])
    out: dict[str, np.ndarray] = {}
    i = 0
    while i < len(utts):
        batch, states = [], 0
        while i < len(utts):
            u = utts[i]
            cells = (states + graphs[u].num_states) * feats[u].shape[0]
            if batch and cells > cfg.batch_cells:
                break
            batch.append(u)
            states += graphs[u].num_states
            i += 1
        # One likelihood matmul for the whole batch, split back per utterance.
        x = torch.cat([feats[u] for u in batch]).to(dev)
        lls = list((model.gmm.log_likelihoods(x) * cfg.acoustic_scale).split(
            [feats[u].shape[0] for u in batch]))
        paths, _ = viterbi_align([graphs[u] for u in batch], lls, tid_lp, tid2pdf)
        for u, p in zip(batch, paths):
            if p is None:
                log.warning("utterance '%s': no alignment path (%d frames); skipped", u,
                            feats[u].shape[0])
            else:
                out[u] = p
    return out


def _stats(model: GmmHmm, x: torch.Tensor, alis):
    """GMM statistics of the frames x (the utterances of `alis`, in its order, on the device)."""
    tids = np.concatenate([alis[u] for u in alis])
    pdf = torch.from_numpy(model.tm.tid2pdf[tids]).to(x.device)
    occ, sx, sxx, ll = model.gmm.accumulate(x, pdf)
    tid_counts = np.bincount(tids, minlength=model.tm.num_tids + 1)
    return occ, sx, sxx, ll / max(len(tids), 1), tid_counts


def train_mono(lang: Lang, feats: dict[str, torch.Tensor], texts: dict[str, list[str]],
               cfg: MonoConfig, device: torch.device, where: str = "text") -> GmmHmm:
    """feats: CMVN'd log-mel per utterance [T, F]; texts: words per utterance."""
    tm = TransitionModel(lang.topo, monophone_tuples(lang.topo, lang.topo.phones))
    gfeats = {u: cfg.feature.apply(f.float()) for u, f in feats.items() if u in texts}
    allx = torch.cat(list(gfeats.values())).double()
    gmm = DiagGmm.init_single(tm.num_pdfs, allx.mean(0).float(), allx.var(0).float()).to(device)
    model = GmmHmm(tm, gmm, cfg.feature)
    log.info("monophone system: %d phones, %d pdfs, %d transition ids, feature dim %d",
             len(lang.topo.phones), tm.num_pdfs, tm.num_tids, allx.shape[1])
    graphs = compile_graphs(lang, tm, {u: texts[u] for u in gfeats}, where)

    alis = {}
    prons = {w: ph for w, _, ph in reversed(lang.lexicon)}  # first pronunciation of each word
    sil = [lang.optional_silence]
    for u in sorted(graphs):
        phones = sil + [p for w in word_ids(lang, u, texts[u], where) for p in prons[w]] + sil
        ali = equal_align(tm, phones, gfeats[u].shape[0])
        if ali is None:
            log.warning("utterance '%s': too short (%d frames) for its transcript; skipped",
                        u, gfeats[u].shape[0])
        else:
            alis[u] = ali
    return train_em(model, graphs, gfeats, alis, cfg, device)


# before_stats(it, model, alis) -> new features per utterance, or None to keep them
BeforeStats = Callable[[int, GmmHmm, dict[str, np.ndarray]], dict[str, torch.Tensor] | None]


def train_em(model: GmmHmm, graphs: dict[str, FstArrays], gfeats: dict[str, torch.Tensor],
             alis: dict[str, np.ndarray], cfg: MonoConfig, device: torch.device,
             before_stats: BeforeStats | None = None) -> GmmHmm:
    """Viterbi EM from a first alignment: `cfg.num_iters` rounds of statistics, GMM and
    transition updates, Gaussian splitting (linearly towards `cfg.total_gauss` over
    `cfg.max_iter_inc` rounds) and realignment on `cfg.realign_iters`.

    `before_stats`, if given, is called every round after the realignment and before the
    statistics; it may change the model in place and return new features for every
    utterance (tri2's MLLT rotates the feature space and the means together)."""
    num_gauss = model.gmm.num_gauss
    inc_gauss = (cfg.total_gauss - num_gauss) / max(cfg.max_iter_inc, 1)
    gen = torch.Generator().manual_seed(cfg.seed)
    frames = (None, None)  # (the utterances, their features concatenated on the device)
    for it in range(cfg.num_iters):
        t0 = time.time()
        if it > 0 and it in cfg.realign_iters:
            alis = align_batched(model, graphs, gfeats, cfg.align)
        if before_stats is not None:
            new_feats = before_stats(it, model, alis)
            if new_feats is not None:
                gfeats, frames = new_feats, (None, None)
        if frames[0] != list(alis):  # copied once, and again only when a realignment lost some
            frames = (list(alis), torch.cat([gfeats[u] for u in alis]).to(device))
        occ, sx, sxx, avg_ll, tid_counts = _stats(model, frames[1], alis)
        model.gmm.update(occ, sx, sxx, cfg.min_gauss_occ, cfg.var_floor)
        model.tm.update(tid_counts)
        if it < cfg.max_iter_inc:
            num_gauss = min(cfg.total_gauss, num_gauss + inc_gauss)
            model.gmm.mix_up(int(round(num_gauss)), occ.sum(-1).cpu().numpy(), cfg.power,
                             cfg.min_split_count, generator=gen)
        log.info("iter %d: avg log-like/frame %.3f over %d utts, %d gauss (%.1fs)", it, avg_ll,
                 len(alis), model.gmm.num_gauss, time.time() - t0)
    return model


def save_alignment_info(out_dir: Path, tm: TransitionModel, pdf_alis: dict[str, np.ndarray]):
    """num_pdfs and pdf priors (occupation counts, Kaldi vector text) beside the alignments."""
    counts = np.bincount(np.concatenate(list(pdf_alis.values())), minlength=tm.num_pdfs)
    write_text(out_dir / "num_pdfs", f"{tm.num_pdfs}\n")
    write_text(out_dir / "priors", "[ " + " ".join(str(int(c)) for c in counts) + " ]\n")
