"""Kaldi-style transition model.

A *transition state* is a tuple (phone, hmm_state, pdf); its outgoing HMM transitions get
*transition ids* 1..N (0 is epsilon in FSTs). Alignments are sequences of transition ids, from
which the pdf (the DNN target), the phone and the HMM state of every frame follow.
For monophones the pdf of (phone, pdf_class) is a running index; with a context-dependency tree
(asr_kd.hmm.context) a (phone, hmm_state) has one tuple per pdf the tree can give it.
"""

from __future__ import annotations

import numpy as np
import torch

from asr_kd.lang.topology import Topology


class TransitionModel:
    def __init__(self, topo: Topology, tuples: list[tuple[int, int, int]]):
        self.topo = topo
        self.tuples = sorted(set(tuples))  # transition state s (0-based) -> (phone, hmm_state, pdf)
        self.state_index = {t: s for s, t in enumerate(self.tuples)}
        tid_state, tid_dst, tid_prob = [0], [0], [0.0]  # tid 0 is a placeholder
        self.state_first_tid = []
        for s, (phone, hmm_state, _pdf) in enumerate(self.tuples):
            self.state_first_tid.append(len(tid_state))
            for dst, prob in topo.states(phone)[hmm_state].transitions:
                tid_state.append(s)
                tid_dst.append(dst)
                tid_prob.append(prob)
        self.tid2state = np.array(tid_state, dtype=np.int64)
        self.tid2dst = np.array(tid_dst, dtype=np.int64)
        tup = np.array(self.tuples, dtype=np.int64).reshape(-1, 3)
        self.tid2phone = tup[self.tid2state, 0]
        self.tid2hmm_state = tup[self.tid2state, 1]
        self.tid2pdf = tup[self.tid2state, 2]
        self.tid2pdf[0] = -1
        self.tid2phone[0] = 0
        self.is_self_loop = self.tid2dst == self.tid2hmm_state
        self.is_self_loop[0] = False
        self.log_probs = np.log(np.maximum(np.array(tid_prob), 1e-30)).astype(np.float32)
        self.log_probs[0] = 0.0
        self.num_pdfs = int(tup[:, 2].max()) + 1 if len(tup) else 0

    @property
    def num_tids(self) -> int:
        return len(self.tid2state) - 1

    def tid(self, state: int, index: int) -> int:
        return self.state_first_tid[state] + index

    def self_loop_log_prob(self, state: int) -> float:
        """log a_jj of a transition state (-inf when it has no self-loop)."""
        for i, (dst, _) in enumerate(self._transitions(state)):
            if dst == self.tuples[state][1]:
                return float(self.log_probs[self.tid(state, i)])
        return float("-inf")

    def _transitions(self, state: int):
        phone, hmm_state, _ = self.tuples[state]
        return self.topo.states(phone)[hmm_state].transitions

    def scaled_log_probs(self, transition_scale: float, self_loop_scale: float) -> np.ndarray:
        """Per-tid graph log-probs, Kaldi's convention: self-loops scaled by self_loop_scale; a
        forward transition gets transition_scale * log(a_jk / (1 - a_jj)) plus self_loop_scale *
        log(1 - a_jj), so with both scales 1 it is plain log a_jk."""
        lp = self.log_probs.astype(np.float64)
        loop_lp = np.full(len(self.tuples), -np.inf)
        loop_lp[self.tid2state[self.is_self_loop]] = lp[self.is_self_loop]
        p_stay = np.exp(loop_lp[self.tid2state])  # [tids]
        fwd = np.log(np.maximum(1.0 - p_stay, 1e-30))
        out = transition_scale * (lp - fwd) + self_loop_scale * fwd
        out[self.is_self_loop] = self_loop_scale * lp[self.is_self_loop]
        out[0] = 0.0
        return out.astype(np.float32)

    def update(self, tid_counts: np.ndarray, floor: float = 0.01) -> None:
        """ML re-estimation of a_jk from tid occupation counts, floored like Kaldi's MLE update."""
        for s in range(len(self.tuples)):
            first = self.state_first_tid[s]
            n = len(self._transitions(s))
            counts = tid_counts[first:first + n].astype(np.float64)
            total = counts.sum()
            if total <= 0:
                continue
            probs = np.maximum(counts / total, floor)
            self.log_probs[first:first + n] = np.log(probs / probs.sum())

    def state_dict(self) -> dict:
        return {"topo": self.topo.to_text(), "tuples": torch.tensor(self.tuples, dtype=torch.int64),
                "log_probs": torch.from_numpy(self.log_probs.copy())}

    @classmethod
    def from_state_dict(cls, d: dict) -> TransitionModel:
        tm = cls(Topology.from_text(d["topo"]), [tuple(t) for t in d["tuples"].tolist()])
        tm.log_probs = d["log_probs"].numpy().astype(np.float32)
        return tm


def monophone_tuples(topo: Topology, phones: list[int]) -> list[tuple[int, int, int]]:
    """One pdf per (phone, pdf class), numbered in phone order: Kaldi's monophone layout."""
    tuples, next_pdf = [], 0
    for phone in sorted(phones):
        states = topo.states(phone)
        base = next_pdf
        for j, st in enumerate(states):
            if st.pdf_class is not None:
                tuples.append((phone, j, base + st.pdf_class))
        next_pdf = base + topo.num_pdf_classes(phone)
    return tuples
