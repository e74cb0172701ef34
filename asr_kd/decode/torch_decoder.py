"""A batched frame-synchronous Viterbi beam search over a pdf-labelled HCLG, in torch.

The same code runs on the CPU and the GPU. Tokens of all utterances of a batch live in flat
tensors (utterance, state, cost) and every step works on all of them at once:

1. prune the tokens of each utterance to `beam` below its best and to its `max_active` best
   (Kaldi's FasterDecoder::GetCutoff, without min_active);
2. emitting step: follow every emitting arc (CSR by source state) of every token, cost +=
   arc weight - scaled log-likelihood of the arc's pdf, drop candidates more than `beam` above
   the utterance's best, keep the best candidate per (utterance, state);
3. epsilon closure: follow input-epsilon arcs from the tokens that improved, again and again,
   until no (utterance, state) improves (FasterDecoder::ProcessNonemitting, by rounds).

Every frame appends a token table (state, cost, back-pointer, output label, pdf); a token made
by an epsilon arc points into its own frame's table at an earlier row, so traceback cannot
loop. Costs are float64, as Kaldi's decoder keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldifst
import numpy as np
import torch

from asr_kd.decode.base import DecodeConfig, Decoder, Hypothesis, register_decoder
from asr_kd.utils.fst import FstArrays, to_arrays


@dataclass
class _Csr:
    """Arcs of one kind grouped by source state: arcs of s are ptr[s]:ptr[s + 1]."""

    ptr: torch.Tensor  # [S + 1] int64
    dst: torch.Tensor  # [A] int64
    pdf: torch.Tensor  # [A] int64 (ilabel - 1; -1 for epsilon arcs)
    olabel: torch.Tensor  # [A] int64
    weight: torch.Tensor  # [A] float64

    @classmethod
    def build(cls, a: FstArrays, keep: np.ndarray, device) -> _Csr:
        order = np.argsort(a.src[keep], kind="stable")
        src = a.src[keep][order]
        ptr = np.zeros(a.num_states + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=a.num_states), out=ptr[1:])

        def t(x, dtype=torch.int64):
            return torch.as_tensor(np.ascontiguousarray(x[keep][order]), dtype=dtype, device=device)

        return cls(torch.as_tensor(ptr, device=device), t(a.dst), t(a.ilabel) - 1, t(a.olabel),
                   t(a.weight, torch.float64))

    def expand(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (token index, arc index) for every arc leaving each of `states`."""
        first = self.ptr[states]
        counts = self.ptr[states + 1] - first
        tok = torch.repeat_interleave(torch.arange(len(states), device=states.device), counts)
        start_of_tok = torch.cumsum(counts, 0) - counts
        arc = first[tok] + torch.arange(len(tok), device=states.device) - start_of_tok[tok]
        return tok, arc


class DeviceGraph:
    """An HCLG (input labels pdf id + 1, output labels word ids) as CSR tensors on a device."""

    def __init__(self, fst: kaldifst.StdVectorFst | FstArrays, device="cpu"):
        a = fst if isinstance(fst, FstArrays) else to_arrays(fst)
        if a.num_states == 0 or a.start < 0:
            raise ValueError("the decoding graph is empty (no start state)")
        self.num_states, self.start, self.device = a.num_states, a.start, torch.device(device)
        emitting = a.ilabel > 0
        self.emitting = _Csr.build(a, emitting, self.device)
        self.epsilon = _Csr.build(a, ~emitting, self.device)
        self.final = torch.as_tensor(a.final, dtype=torch.float64, device=self.device)
        self.max_pdf = int(a.ilabel.max()) - 1 if a.num_arcs else -1


@dataclass
class _Frame:
    """One frame's token table (rows appended in order); `same` rows point into this table."""

    utt: torch.Tensor
    state: torch.Tensor
    cost: torch.Tensor
    prev: torch.Tensor
    same: torch.Tensor
    olabel: torch.Tensor
    pdf: torch.Tensor


def _segment_best(keys: torch.Tensor, costs: torch.Tensor):
    """-> (unique keys, their best cost, index of the first candidate reaching it)."""
    uniq, inv = torch.unique(keys, return_inverse=True)
    best = torch.full((len(uniq),), torch.inf, dtype=costs.dtype, device=costs.device)
    best = best.scatter_reduce(0, inv, costs, reduce="amin")
    cand = torch.arange(len(keys), device=keys.device)
    big = torch.full_like(cand, len(keys))
    first = torch.full((len(uniq),), len(keys), dtype=torch.int64, device=keys.device)
    first = first.scatter_reduce(0, inv, torch.where(costs == best[inv], cand, big), reduce="amin")
    return uniq, best, first


def _utt_best(utt: torch.Tensor, cost: torch.Tensor, num_utts: int) -> torch.Tensor:
    best = torch.full((num_utts,), torch.inf, dtype=cost.dtype, device=cost.device)
    return best.scatter_reduce(0, utt, cost, reduce="amin")


def _prune(utt, cost, num_utts: int, beam: float, max_active: int) -> torch.Tensor:
    """Indices of the tokens within `beam` of their utterance's best and among its max_active
    best (ties broken by position)."""
    keep = cost < _utt_best(utt, cost, num_utts)[utt] + beam
    idx = torch.nonzero(keep).squeeze(1)
    if max_active > 0 and len(idx) > max_active:
        order = idx[torch.argsort(cost[idx], stable=True)]
        order = order[torch.argsort(utt[order], stable=True)]  # by utterance, then cost
        counts = torch.bincount(utt[order], minlength=num_utts)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(order), device=cost.device) - first[utt[order]]
        idx = torch.sort(order[rank < max_active]).values
    return idx


@register_decoder("torch")
class TorchDecoder(Decoder):
    """Batched Viterbi beam search; `decode_batch` returns one Hypothesis (or None) per
    utterance."""

    def __init__(self, graph: DeviceGraph, cfg: DecodeConfig):
        self.graph, self.cfg = graph, cfg

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device="cpu") -> TorchDecoder:
        return cls(DeviceGraph(hclg, device), cfg)

    def _closure(self, frame: _Frame, live: torch.Tensor, cutoff: torch.Tensor):
        """Follow epsilon arcs from the live rows until nothing improves; returns the new live
        rows. Improved (utterance, state) pairs get a new row; the old row stops being live."""
        g, S = self.graph, self.graph.num_states
        frontier = live
        while len(frontier):
            tok, arc = g.epsilon.expand(frame.state[frontier])
            if len(arc) == 0:
                break
            src = frontier[tok]
            cost = frame.cost[src] + g.epsilon.weight[arc]
            utt = frame.utt[src]
            ok = cost < cutoff[utt]
            src, arc, cost, utt = src[ok], arc[ok], cost[ok], utt[ok]
            if len(arc) == 0:
                break
            keys, best, first = _segment_best(utt * S + g.epsilon.dst[arc], cost)
            live_keys = frame.utt[live] * S + frame.state[live]
            order = torch.argsort(live_keys)
            sorted_keys = live_keys[order]
            pos = torch.searchsorted(sorted_keys, keys).clamp(max=len(live) - 1)
            found = sorted_keys[pos] == keys
            old = live[order[pos]]
            better = ~found | (best < frame.cost[old])
            if not bool(better.any()):
                break
            win = first[better]
            n0 = len(frame.state)
            new_rows = torch.arange(n0, n0 + len(win), device=live.device)
            frame.utt = torch.cat([frame.utt, utt[win]])
            frame.state = torch.cat([frame.state, g.epsilon.dst[arc[win]]])
            frame.cost = torch.cat([frame.cost, best[better]])
            frame.prev = torch.cat([frame.prev, src[win]])
            frame.same = torch.cat([frame.same, torch.ones_like(win, dtype=torch.bool)])
            frame.olabel = torch.cat([frame.olabel, g.epsilon.olabel[arc[win]]])
            frame.pdf = torch.cat([frame.pdf, torch.full_like(win, -1)])
            replaced = old[better & found]
            still = ~torch.isin(live, replaced)
            live = torch.cat([live[still], new_rows])
            frontier = new_rows
        return live

    @torch.no_grad()
    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        """loglikes: per utterance [T_b, num_pdfs] unscaled log-likelihoods."""
        g, cfg, dev = self.graph, self.cfg, self.graph.device
        B = len(loglikes)
        if B == 0:
            return []
        mats = [torch.as_tensor(x, dtype=torch.float32) for x in loglikes]
        P = mats[0].shape[1]
        if any(m.dim() != 2 or m.shape[1] != P for m in mats):
            raise ValueError("every log-likelihood matrix must be [T, num_pdfs] with one num_pdfs")
        if g.max_pdf >= P:
            raise ValueError(f"the graph uses pdf {g.max_pdf} but the model has only {P} pdfs")
        lengths = torch.tensor([m.shape[0] for m in mats], device=dev)
        T = int(lengths.max())
        ll = torch.zeros((B, T, P), dtype=torch.float32, device=dev)
        for b, m in enumerate(mats):
            ll[b, : m.shape[0]] = m.to(dev) * cfg.acoustic_scale

        ar = torch.arange(B, device=dev)
        zero = torch.zeros(B, dtype=torch.int64, device=dev)
        start = _Frame(ar, torch.full((B,), g.start, device=dev),
                       torch.zeros(B, dtype=torch.float64, device=dev), zero - 1,
                       torch.zeros(B, dtype=torch.bool, device=dev), zero.clone(), zero - 1)
        # As FasterDecoder::InitDecoding: the start token at cost 0, closure within the beam.
        live = self._closure(start, ar, torch.full((B,), cfg.beam, dtype=torch.float64, device=dev))
        frames = [start]
        ends: dict[int, tuple[int, torch.Tensor]] = {}  # utt -> (frame table index, live rows)
        for b in torch.nonzero(lengths == 0).squeeze(1).tolist():
            ends[b] = (0, live[start.utt[live] == b])
        for t in range(T):
            prev = frames[-1]
            live = live[lengths[prev.utt[live]] > t]  # utterances that have frame t
            live = live[_prune(prev.utt[live], prev.cost[live], B, cfg.beam, cfg.max_active)]
            tok, arc = g.emitting.expand(prev.state[live])
            src = live[tok]
            utt = prev.utt[src]
            cost = prev.cost[src] + g.emitting.weight[arc] - ll[utt, t, g.emitting.pdf[arc]]
            cutoff = _utt_best(utt, cost, B) + cfg.beam
            ok = cost < cutoff[utt]
            src, arc, cost, utt = src[ok], arc[ok], cost[ok], utt[ok]
            keys, best, first = _segment_best(utt * g.num_states + g.emitting.dst[arc], cost)
            frame = _Frame(keys // g.num_states, keys % g.num_states, best, src[first],
                           torch.zeros(len(keys), dtype=torch.bool, device=dev),
                           g.emitting.olabel[arc[first]], g.emitting.pdf[arc[first]])
            live = self._closure(frame, torch.arange(len(keys), device=dev), cutoff)
            frames.append(frame)
            for b in torch.nonzero(lengths == t + 1).squeeze(1).tolist():
                ends[b] = (t + 1, live[frame.utt[live] == b])
        return self._trace(frames, ends, B)

    def _trace(self, frames: list[_Frame], ends, B: int) -> list[Hypothesis | None]:
        g = self.graph
        host = [{k: getattr(f, k).cpu().numpy() for k in ("state", "cost", "prev", "same",
                                                            "olabel", "pdf")} for f in frames]
        final = g.final.cpu().numpy()
        out: list[Hypothesis | None] = []
        for b in range(B):
            fi, rows = ends[b]
            rows = rows.cpu().numpy()
            if len(rows) == 0:
                out.append(None)
                continue
            h = host[fi]
            with_final = h["cost"][rows] + final[h["state"][rows]]
            reached = bool(np.isfinite(with_final).any())
            score = with_final if reached else h["cost"][rows]
            r = int(rows[np.argmin(score)])
            total = float(score.min())
            words, pdfs = [], []
            while r >= 0:
                h = host[fi]
                if h["olabel"][r] > 0:
                    words.append(int(h["olabel"][r]))
                if h["pdf"][r] >= 0:
                    pdfs.append(int(h["pdf"][r]))
                same, r = bool(h["same"][r]), int(h["prev"][r])
                if not same:
                    fi -= 1
            out.append(Hypothesis(words[::-1], np.array(pdfs[::-1], dtype=np.int64), total,
                                  reached))
        return out
