"""Triphone GMM-HMM training, Kaldi's steps/train_deltas.sh in torch.

From a monophone system and its alignments: tree statistics per seen context, questions from a
phone clustering, a decision tree with `tree.num_leaves` tied states (asr_kd.hmm.tree), one
Gaussian per leaf from the tree statistics, the monophone alignments converted to the tree's
transition states, then Viterbi EM as for monophones (Kaldi's defaults: 35 iterations, Gaussians
split up to `total_gauss` over the first 25, realignment on iterations 10, 20 and 30).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.train_mono import MonoConfig, compile_graphs, train_em
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.hmm.tree import (
    TreeConfig,
    accumulate_tree_stats,
    build_tree,
    cluster_phones,
    leaf_stats,
    phone_instances,
)
from asr_kd.lang import Lang
from asr_kd.utils.fst import FstArrays

log = logging.getLogger(__name__)


@dataclass
class TriConfig(MonoConfig):
    num_iters: int = 35
    max_iter_inc: int = 25
    total_gauss: int = 5000
    realign_iters: list[int] = field(default_factory=lambda: [10, 20, 30])
    tree: TreeConfig = field(default_factory=TreeConfig)


def convert_alignments(src: TransitionModel, dst: TransitionModel, ctx: ContextDependency,
                       alis: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map transition-id alignments of `src` (same topology) onto `dst`, whose pdfs the tree
    `ctx` picks from each frame's phone context (Kaldi's convert-ali)."""
    out = {}
    pad_left, pad_right = ctx.central, ctx.width - ctx.central - 1
    for utt, tids in alis.items():
        seq, instance = phone_instances(src, tids)
        padded = np.concatenate([np.zeros(pad_left, np.int64), seq, np.zeros(pad_right, np.int64)])
        keys = np.stack([padded[instance + k] for k in range(ctx.width)]
                        + [src.tid2hmm_state[tids]], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        state = np.empty(len(uniq), dtype=np.int64)
        for i, (*window, j) in enumerate(uniq.tolist()):
            phone = window[ctx.central]
            pdf = ctx.pdf(window, dst.topo.states(phone)[j].pdf_class)
            state[i] = dst.state_index[(phone, j, pdf)]
        offset = tids - np.array(src.state_first_tid)[src.tid2state[tids]]  # which transition
        first = np.array(dst.state_first_tid)[state[inverse.reshape(-1)]]
        out[utt] = first + offset
    return out


def init_gmm(ctx: ContextDependency, stats, var_floor: float) -> DiagGmm:
    """One Gaussian per leaf from its contexts' statistics; leaves no frame reached (phones
    unseen in training) start at the global mean and variance."""
    count, sx, sxx = leaf_stats(ctx, stats)
    total = count.sum()
    g_mean = sx.sum(0) / total
    g_var = sxx.sum(0) / total - g_mean ** 2
    n = np.maximum(count, 1e-10)[:, None]
    seen = (count > 0)[:, None]
    mean = np.where(seen, sx / n, g_mean)
    var = np.maximum(np.where(seen, sxx / n - (sx / n) ** 2, g_var), var_floor)
    p, d = mean.shape
    return DiagGmm(torch.from_numpy(mean).float().reshape(p, 1, d),
                   torch.from_numpy(var).float().reshape(p, 1, d),
                   torch.zeros(p, 1))


def init_tri(lang: Lang, gfeats: dict[str, torch.Tensor], texts: dict[str, list[str]],
             src: GmmHmm, alis: dict[str, np.ndarray], cfg: TriConfig,
             feature: GmmFeatureConfig, device: torch.device, where: str = "text",
             ) -> tuple[GmmHmm, dict[str, FstArrays], dict[str, np.ndarray]]:
    """A new tree and its first model from `src`'s alignments `alis` and the GMM features
    `gfeats` of the same utterances (Kaldi's acc-tree-stats, cluster-phones, build-tree,
    gmm-init-model, convert-ali, compile-train-graphs). Returns (the model, whose features are
    `feature`; its training graphs; the alignments converted to its transition ids)."""
    stats = accumulate_tree_stats(src.tm, alis, gfeats, cfg.tree.context_width,
                                  cfg.tree.central_position, ci_phones=lang.silence_phones)
    questions = cluster_phones(stats, lang.topo, lang.silence_phones, cfg.tree)
    log.info("%d questions from the phone clustering", len(questions))
    ctx = build_tree(stats, lang.topo, questions, cfg.tree)
    tm = TransitionModel(lang.topo, ctx.tuples(lang.topo))
    model = GmmHmm(tm, init_gmm(ctx, stats, cfg.var_floor).to(device), feature, ctx)
    log.info("triphone system: %d pdfs, %d transition states, %d transition ids",
             tm.num_pdfs, len(tm.tuples), tm.num_tids)
    tri_alis = convert_alignments(src.tm, tm, ctx, alis)
    graphs = compile_graphs(lang, tm, {u: texts[u] for u in alis}, where, ctx)
    return model, graphs, tri_alis


def train_tri(lang: Lang, feats: dict[str, torch.Tensor], texts: dict[str, list[str]],
              mono: GmmHmm, alis: dict[str, np.ndarray], cfg: TriConfig, device: torch.device,
              where: str = "text") -> GmmHmm:
    """feats: CMVN'd log-mel per utterance; alis: the monophone model's transition-id
    alignments (utterances without one are left out)."""
    utts = sorted(u for u in alis if u in texts and u in feats)
    gfeats = {u: cfg.feature.apply(feats[u].float()).to(device) for u in utts}
    alis = {u: alis[u] for u in utts}
    model, graphs, tri_alis = init_tri(lang, gfeats, texts, mono, alis, cfg, cfg.feature,
                                       device, where)
    return train_em(model, graphs, gfeats, tri_alis, cfg, device)
