"""Training graphs and batched Viterbi forced alignment in torch.

A training graph is H∘C∘L∘W for one transcript W (C: asr_kd.hmm.context), with the context
windows projected away and epsilons removed, so every arc consumes exactly one frame and
carries a transition id. Viterbi runs on a whole batch of such graphs at once: states of all
utterances are concatenated, each frame is one gather of the previous scores over all arcs plus
one scatter-max into the destination states.
"""

from __future__ import annotations

import logging

import kaldifst
import numpy as np
import torch

from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.h_fst import phone_states, training_h
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.utils.fst import FstArrays, compile_text, from_arrays, to_arrays
from asr_kd.utils.sync_audit import sync_region

log = logging.getLogger(__name__)


class TrainingGraphCompiler:
    def __init__(self, tm: TransitionModel, L: kaldifst.StdVectorFst,
                 ctx: ContextDependency | None = None):
        self.tm = tm
        self.ctx = ctx or ContextDependency.from_transitions(tm.topo, tm.tuples)
        self.L = L
        kaldifst.arcsort(self.L, sort_type="olabel")
        self._mono_h = None  # a monophone H is the same for every transcript

    def _h(self, windows: list[tuple[int, ...]]) -> kaldifst.StdVectorFst:
        if self._mono_h is not None:
            return self._mono_h
        H = compile_text(training_h(self.tm, self.ctx, windows))
        kaldifst.arcsort(H, sort_type="olabel")
        if self.ctx.width == 1:
            self._mono_h = H
        return H

    def compile(self, word_ids: list[int]) -> FstArrays:
        text = "".join(f"{i} {i + 1} {w} {w} 0\n" for i, w in enumerate(word_ids))
        W = compile_text(text + f"{len(word_ids)} 0\n")
        CLW, windows = self.ctx.compose(kaldifst.compose(self.L, W))
        kaldifst.arcsort(CLW, sort_type="ilabel")
        a = to_arrays(kaldifst.compose(self._h(windows), CLW))
        a.olabel[:] = 0  # only the transition ids matter for alignment
        g = from_arrays(a)
        kaldifst.rmepsilon(g)
        kaldifst.connect(g)
        return to_arrays(g)


def equal_align(tm: TransitionModel, phones: list[int], num_frames: int) -> np.ndarray | None:
    """Flat-start alignment: the frames shared out equally among the emitting states of the
    phone sequence `phones`, each state visited once in topology order (Kaldi's align-equal on a
    linear path). Within a state the frames take its self-loop, the last one the transition to
    the next state. None if there are fewer frames than states.

    The caller puts silence at both ends: read speech starts and ends in silence, and a flat
    start that lets the first word's model absorb the leading silence can settle there
    (seen on yesno, where whole-word NO models then learned silence)."""
    path = []  # (self-loop tid or None, tid leaving towards the next state), one per HMM state
    states_of = phone_states(tm)
    for phone in phones:
        states = tm.topo.states(phone)
        emitting = [j for j, st in enumerate(states) if st.pdf_class is not None]
        for k, j in enumerate(emitting):
            nxt = emitting[k + 1] if k + 1 < len(emitting) else len(states) - 1
            s = states_of[phone][j]
            loop = fwd = None
            for i, (dst, _) in enumerate(states[j].transitions):
                if dst == j:
                    loop = tm.tid(s, i)
                if dst == nxt:
                    fwd = tm.tid(s, i)
            if fwd is None:
                raise ValueError(f"phone {phone}: state {j} has no transition to state {nxt}")
            path.append((loop, fwd))
    if num_frames < len(path):
        return None
    bounds = np.linspace(0, num_frames, len(path) + 1).round().astype(int)
    out = np.empty(num_frames, dtype=np.int64)
    for (loop, fwd), a, b in zip(path, bounds[:-1], bounds[1:]):
        out[a:b - 1] = loop if loop is not None else fwd
        out[b - 1] = fwd
    return out


def viterbi_align(graphs: list[FstArrays], logliks: list[torch.Tensor], tid_log_probs: torch.Tensor,
                  tid2pdf: torch.Tensor) -> tuple[list[np.ndarray | None], list[float]]:
    """Best path through each graph given frame log-likelihoods.

    graphs: emitting-only graphs (ilabel = transition id, weight = graph cost).
    logliks: per utterance [T_i, num_pdfs], already multiplied by the acoustic scale.
    tid_log_probs: [num_tids + 1] scaled transition log-probs, added to every arc.
    Returns per utterance the transition id of every frame (None where no path survives) and the
    path score.
    """
    device = logliks[0].device
    B = len(graphs)
    lengths = torch.tensor([x.shape[0] for x in logliks], device=device)
    T = int(lengths.max())
    P = logliks[0].shape[1]
    ll = torch.full((B, T, P), -1e30, device=device)
    for b, x in enumerate(logliks):
        ll[b, : x.shape[0]] = x
    state_off = np.cumsum([0] + [g.num_states for g in graphs])
    S = int(state_off[-1])

    def cat(f):
        return torch.from_numpy(np.concatenate([f(b, g) for b, g in enumerate(graphs)])).to(device)

    src = cat(lambda b, g: g.src + state_off[b])
    dst = cat(lambda b, g: g.dst + state_off[b])
    tid = cat(lambda b, g: g.ilabel)
    utt = cat(lambda b, g: np.full(g.num_arcs, b))
    state_utt = cat(lambda b, g: np.full(g.num_states, b))
    final = cat(lambda b, g: -g.final.astype(np.float32))
    weight = -cat(lambda b, g: g.weight.astype(np.float32)) + tid_log_probs[tid]
    pdf = tid2pdf[tid]
    arc_ids = torch.arange(len(src), device=device)
    starts = torch.as_tensor(state_off[:-1] + np.array([g.start for g in graphs]), device=device)

    delta = torch.full((S,), -torch.inf, device=device)
    delta[starts] = 0.0
    backptr = torch.empty((T, S), dtype=torch.int64, device=device)
    state_len = lengths[state_utt]
    neg_inf = torch.full((S,), -torch.inf, device=device)
    for t in range(T):
        with sync_region("viterbi frame"):
            cand = delta[src] + weight + ll[utt, t, pdf]  # [A]
            new = neg_inf.scatter_reduce(0, dst, cand, reduce="amax", include_self=True)
            winner = torch.where(cand == new[dst], arc_ids, -1)
            backptr[t] = torch.full((S,), -1, device=device, dtype=torch.int64).scatter_reduce(
                0, dst, winner, reduce="amax", include_self=True)
            delta = torch.where(t < state_len, new, delta)

    end_score = delta + final
    best = torch.full((B,), -torch.inf, device=device).scatter_reduce(
        0, state_utt, end_score, reduce="amax", include_self=True)
    is_best = (end_score == best[state_utt]) & torch.isfinite(end_score)
    best_state = torch.full((B,), -1, device=device, dtype=torch.int64).scatter_reduce(
        0, state_utt, torch.where(is_best, torch.arange(S, device=device), -1), reduce="amax",
        include_self=True)

    # Trace back all utterances together, from each one's last frame.
    state = best_state.clone()
    path = torch.zeros((B, T), dtype=torch.int64, device=device)
    alive = best_state >= 0
    for t in range(T - 1, -1, -1):
        with sync_region("viterbi traceback frame"):
            active = alive & (t < lengths)
            arc = backptr[t, state.clamp_min(0)]
            active = active & (arc >= 0)
            path[:, t] = torch.where(active, tid[arc.clamp_min(0)], 0)
            state = torch.where(active, src[arc.clamp_min(0)], state)
    path = path.cpu().numpy()
    out, scores = [], best.cpu().tolist()
    for b in range(B):
        n = int(lengths[b])
        ok = bool(alive[b]) and (path[b, :n] > 0).all()
        out.append(path[b, :n].copy() if ok else None)
    return out, scores
