"""The decoding graph HCLG, with pdf id + 1 as input labels (0 = epsilon).

Kaldi's mkgraph.sh:
  LG   = minimize(determinize_star(L_disambig ∘ G))          (log semiring determinization)
  CLG  = C ∘ LG                  (kaldifst.compose_context; the identity for monophone models)
  HaCLG = minimize_encoded(determinize_star(Ha ∘ CLG))         (Ha: HMMs without self-loops)
  HCLG = add self-loops to HaCLG, then map transition states to pdf + 1, disambig symbols to 0.
An arc of Ha labelled with transition state s means "the last frame spent in s". A state whose
outgoing arcs all leave the same s gets the self-loop of s, weighted self_loop_scale * log a_ss,
with self_loop_scale * log(1 - a_ss) added to those arcs; a state whose arcs leave several
states reaches each group through an epsilon arc into a new state holding that group's loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kaldifst
import numpy as np

from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.h_fst import decoding_ha
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.lang import Lang
from asr_kd.utils.fst import FstArrays, compile_text, from_arrays, to_arrays

log = logging.getLogger(__name__)


@dataclass
class GraphConfig:
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1


def make_lg(lang: Lang) -> kaldifst.StdVectorFst:
    L = lang.L(disambig=True)
    kaldifst.arcsort(L, sort_type="olabel")
    LG = kaldifst.compose(L, lang.G())
    if kaldifst.determinize_star(LG, use_log=True):
        raise RuntimeError("determinization of L∘G stopped early")
    kaldifst.minimize_encoded(LG)
    kaldifst.arcsort(LG, sort_type="ilabel")
    return LG


def add_self_loops(a: FstArrays, tm: TransitionModel, self_loop_scale: float) -> FstArrays:
    """Insert HMM self-loops into HaCLG (labels = transition state + 1; see module docstring)."""
    num_states = len(tm.tuples)
    loop_lp = np.array([tm.self_loop_log_prob(s) for s in range(num_states)])
    has_loop = np.concatenate([[False], np.isfinite(loop_lp)])  # indexed by label
    loop_cost = np.concatenate([[0.0], -self_loop_scale * loop_lp])
    fwd_cost = np.concatenate([[0.0], -self_loop_scale * np.log1p(-np.exp(loop_lp))])
    is_ts = (a.ilabel >= 1) & (a.ilabel <= num_states)
    loopable = np.zeros(a.num_arcs, dtype=bool)
    loopable[is_ts] = has_loop[a.ilabel[is_ts]]

    src = a.src.copy()
    weight = a.weight.astype(np.float64)
    weight[loopable] += fwd_cost[a.ilabel[loopable]]
    # One self-loop per (state, label) pair of loopable arcs, in state then label order.
    arcs = np.nonzero(loopable)[0]
    key = a.src[arcs] * (num_states + 1) + a.ilabel[arcs]
    pairs, pair_of_arc = np.unique(key, return_inverse=True)
    q, lab = pairs // (num_states + 1), pairs % (num_states + 1)
    labels_per_state = np.bincount(q, minlength=a.num_states)
    out_degree = np.bincount(a.src, minlength=a.num_states)
    loopable_per_state = np.bincount(a.src[arcs], minlength=a.num_states)
    alone_state = (labels_per_state == 1) & (loopable_per_state == out_degree) & \
        ~np.isfinite(a.final)
    alone_state[a.start] = False
    alone = alone_state[q]
    # Otherwise each pair's arcs leave from a new state, entered from q by an epsilon arc.
    holder = q.copy()
    holder[~alone] = a.num_states + np.arange(int((~alone).sum()))
    src[arcs] = holder[pair_of_arc]
    n_pairs = len(pairs)
    eps = np.nonzero(~alone)[0]
    # New arcs in the order of the pairs: the epsilon arc (if any), then the loop.
    new_key = np.concatenate([2 * eps, 2 * np.arange(n_pairs) + 1])
    new_src = np.concatenate([q[eps], holder])
    new_dst = np.concatenate([holder[eps], holder])
    new_il = np.concatenate([np.zeros(len(eps), dtype=np.int64), lab])
    new_w = np.concatenate([np.zeros(len(eps)), loop_cost[lab]])
    order = np.argsort(new_key, kind="stable")
    next_state = a.num_states + len(eps)
    n_new = len(new_key)
    return FstArrays(
        num_states=next_state, start=a.start,
        src=np.concatenate([src, new_src[order]]),
        dst=np.concatenate([a.dst, new_dst[order]]),
        ilabel=np.concatenate([a.ilabel, new_il[order]]),
        olabel=np.concatenate([a.olabel, np.zeros(n_new, dtype=np.int64)]),
        weight=np.concatenate([weight, new_w[order]]).astype(np.float32),
        final=np.concatenate([a.final, np.full(next_state - a.num_states, np.inf,
                                               dtype=np.float32)]),
    )


def make_hclg(lang: Lang, tm: TransitionModel, cfg: GraphConfig,
              ctx: ContextDependency | None = None) -> kaldifst.StdVectorFst:
    ctx = ctx or ContextDependency.from_transitions(tm.topo, tm.tuples)
    LG = make_lg(lang)
    CLG, windows = ctx.compose(LG, lang.disambig_phones)
    kaldifst.arcsort(CLG, sort_type="ilabel")
    ha_text, num_dis = decoding_ha(tm, ctx, windows, cfg.transition_scale)
    Ha = compile_text(ha_text)
    kaldifst.arcsort(Ha, sort_type="olabel")
    HaCLG = kaldifst.compose(Ha, CLG)
    if kaldifst.determinize_star(HaCLG, use_log=True):
        raise RuntimeError("determinization of Ha∘C∘L∘G stopped early")
    kaldifst.minimize_encoded(HaCLG)
    a = add_self_loops(to_arrays(HaCLG), tm, cfg.self_loop_scale)
    # Transition states -> pdf + 1; disambiguation symbols (and anything past them) -> epsilon.
    ts2pdf = np.array([0] + [pdf + 1 for _, _, pdf in tm.tuples] + [0] * num_dis)
    a.ilabel = ts2pdf[a.ilabel]
    hclg = from_arrays(a)
    kaldifst.connect(hclg)
    kaldifst.arcsort(hclg, sort_type="ilabel")
    log.info("HCLG: %d states, %d arcs before connect (LG: %d states, C∘LG: %d states, %d "
             "context windows)", a.num_states, a.num_arcs, LG.num_states, CLG.num_states,
             len(windows))
    return hclg
