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

    src, dst = a.src.copy(), a.dst.copy()
    weight = a.weight.astype(np.float64)
    weight[loopable] += fwd_cost[a.ilabel[loopable]]
    new_src, new_dst, new_il, new_w = [], [], [], []
    next_state = a.num_states
    order = np.argsort(src, kind="stable")
    bounds = np.searchsorted(src[order], np.arange(a.num_states + 1))
    for q in range(a.num_states):
        arcs = order[bounds[q]:bounds[q + 1]]
        arcs = arcs[loopable[arcs]]
        if len(arcs) == 0:
            continue
        labels = np.unique(a.ilabel[arcs])
        alone = len(labels) == 1 and len(arcs) == bounds[q + 1] - bounds[q] and \
            not np.isfinite(a.final[q]) and q != a.start
        for lab in labels:
            if alone:
                holder = q
            else:
                holder = next_state
                next_state += 1
                new_src.append(q)
                new_dst.append(holder)
                new_il.append(0)
                new_w.append(0.0)
                src[arcs[a.ilabel[arcs] == lab]] = holder
            new_src.append(holder)
            new_dst.append(holder)
            new_il.append(lab)
            new_w.append(loop_cost[lab])
    n_new = len(new_src)
    return FstArrays(
        num_states=next_state, start=a.start,
        src=np.concatenate([src, np.array(new_src, dtype=np.int64)]),
        dst=np.concatenate([dst, np.array(new_dst, dtype=np.int64)]),
        ilabel=np.concatenate([a.ilabel, np.array(new_il, dtype=np.int64)]),
        olabel=np.concatenate([a.olabel, np.zeros(n_new, dtype=np.int64)]),
        weight=np.concatenate([weight, np.array(new_w)]).astype(np.float32),
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
