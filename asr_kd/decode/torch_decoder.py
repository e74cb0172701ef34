"""A batched frame-synchronous Viterbi beam search over a pdf-labelled HCLG, in torch, whose
frame step reads nothing back from the device (in the spirit of Kaldi's CUDA decoder and k2):
every tensor of a frame has a size fixed before the search, so no op waits for the device.

Every utterance of a batch owns C token slots per frame ([B, C] tensors: state, cost float64,
back-pointer), an empty slot holding cost +inf. A frame is FasterDecoder's:

1. cutoff per utterance as FasterDecoder::GetCutoff: `beam` above the best token, tightened
   to the (max_active + 1)-th smallest cost when more tokens than max_active, loosened to the
   (min_active + 1)-th smallest when fewer than min_active are inside the beam, or to +inf when
   there are at most min_active tokens; the adaptive beam follows (+ beam_delta when tightened
   or loosened). Kaldi takes these costs, beams and adaptive beams as floats: so do we;
2. emitting step: the tokens below the cutoff fill A arc slots per utterance with their
   emitting arcs (repeat_interleave of token numbers by out-degree, padded to exactly A),
   cost += arc weight - scaled log-likelihood; candidates at or above best + adaptive beam are
   dropped (FasterDecoder's next_weight_cutoff once it has seen every arc); the rest are
   recombined per (utterance, state): the lowest cost wins, the first candidate on ties;
3. epsilon closure: as many rounds as the graph's epsilon depth (its longest chain of
   input-epsilon arcs, found once per graph; a cycle is refused), each following the epsilon
   arcs of the tokens that changed in the round before, within the emitting step's cutoff; a
   candidate replaces the token of its state only when strictly cheaper.

Recombination goes through a [B, S + 1] table per batch (the slot of each state's token, and a
scratch): a new state takes the next free slot, in order of its first candidate, as
FasterDecoder's hash list keeps its tokens in order of insertion. Back-pointers (slot, arc) of
every frame go to preallocated [T + 1, B, C] int32 tensors, copied to the host once per batch
for the traceback. Token or arc slots that overflow set flags on the device, read once per
batch; the batch is then decoded again with twice the slots of that kind (logged), which the
decoder keeps for the next batches. Costs are float64, as in Kaldi's decoder.

Memory on the device: 8 (T + 1) B C bytes of back-pointers and 8 B (S + 1) of tables.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from asr_kd.decode.base import DecodeConfig, Decoder, Hypothesis, register_decoder
from asr_kd.decode.device_graph import DeviceGraph, at
from asr_kd.utils.sync_audit import sync_region

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 2048  # token slots per utterance and frame to start with (grows on overflow)
FLT_MAX = float(np.finfo(np.float32).max)  # FasterDecoder::InitDecoding's epsilon cutoff
INF = math.inf


def _f32(x):
    """Round to float32 and back: FasterDecoder keeps beams, adaptive beams and the costs it
    takes the max/min-active cutoffs from as floats."""
    return x.float().double() if isinstance(x, torch.Tensor) else float(np.float32(x))


@dataclass
class _Tokens:
    """One frame's tokens, [B, C] each; slots 0..count-1 of a row are taken, the rest empty
    (state = num_states, cost = +inf). prev: the slot the token came from (the frame before
    for an emitting arc, this frame for an epsilon arc); arc: the arc's number (-1: start)."""

    state: torch.Tensor
    cost: torch.Tensor
    prev: torch.Tensor
    arc: torch.Tensor
    count: torch.Tensor  # [B]

    @classmethod
    def empty(cls, B: int, C: int, num_states: int, device) -> _Tokens:
        def full(value, dtype=torch.int64):
            return torch.full((B, C), value, dtype=dtype, device=device)

        return cls(full(num_states), full(INF, torch.float64), full(-1), full(-1),
                   torch.zeros(B, dtype=torch.int64, device=device))

    def where(self, rows: torch.Tensor, other: _Tokens) -> _Tokens:
        """These tokens in the rows where rows[b], other's elsewhere."""
        r = rows[:, None]
        return _Tokens(*(torch.where(r, a, b) for a, b in
                         ((self.state, other.state), (self.cost, other.cost),
                          (self.prev, other.prev), (self.arc, other.arc))),
                       torch.where(rows, self.count, other.count))


@dataclass
class Capacity:
    """Slots per utterance: tokens per frame, emitting arcs per frame, epsilon arcs per round."""

    tokens: int
    emitting: int
    epsilon: int

    KINDS = ("token", "emitting arc", "epsilon arc")

    def __str__(self) -> str:
        return ", ".join(f"{n} {k}" for n, k in zip(self.as_tuple(), self.KINDS, strict=True))

    def as_tuple(self) -> tuple[int, int, int]:
        return self.tokens, self.emitting, self.epsilon


@dataclass
class _Search:
    """What a batch's search leaves for the traceback, still on the device."""

    last: _Tokens  # each utterance's tokens after its last frame
    prev: torch.Tensor  # [T + 1, B, C] int32
    arc: torch.Tensor  # [T + 1, B, C] int32
    overflow: torch.Tensor  # [3] bool: token, emitting arc, epsilon arc slots


def _best_per_slot(slot: torch.Tensor, cost: torch.Tensor, init: torch.Tensor):
    """slot, cost: [B, N] candidates (slot C: none); init: [B, C] costs to beat. -> the lowest
    cost per slot [B, C] and, per slot, the first column reaching it ([B, C]; N if none)."""
    B, N = cost.shape
    C = init.shape[1]
    pad = torch.full((B, 1), INF, dtype=cost.dtype, device=cost.device)
    best = torch.cat([init, pad], 1).scatter_reduce(1, slot, cost, "amin")
    col = torch.arange(N, device=cost.device).expand(B, N)
    hit = torch.where(cost == best.gather(1, slot), col, N)
    first = torch.full((B, C + 1), N, dtype=torch.int64, device=cost.device)
    return best[:, :C], first.scatter_reduce(1, slot, hit, "amin")[:, :C]


@dataclass
class _Tables:
    """Per utterance and state, [B, S + 1] int32 (column S: the sentinel of empty slots and of
    dropped candidates): the slot of the state's token in the frame being built (-1: none),
    and a scratch for each state's first candidate (NONE between uses)."""

    slot: torch.Tensor
    first: torch.Tensor

    NONE = torch.iinfo(torch.int32).max

    @classmethod
    def empty(cls, B: int, S: int, device) -> _Tables:
        return cls(torch.full((B, S + 1), -1, dtype=torch.int32, device=device),
                   torch.full((B, S + 1), cls.NONE, dtype=torch.int32, device=device))

    def forget(self, toks: _Tokens) -> None:
        """Start a new frame: no state has a token in it."""
        self.slot.scatter_(1, toks.state, -1)

    def slots_of(self, key: torch.Tensor) -> torch.Tensor:
        return self.slot.gather(1, key).long()

    def new_slots(self, key: torch.Tensor, fresh: torch.Tensor, count: torch.Tensor):
        """Give the states of the `fresh` candidates (no token yet) the next free slots, in
        order of their first candidate (FasterDecoder's hash list is in order of insertion).
        key, fresh: [B, N]; count: [B] slots taken. -> the first candidate of each new state
        [B, N]."""
        col = torch.arange(key.shape[1], dtype=torch.int32, device=key.device).expand_as(key)
        self.first.scatter_reduce_(1, key, torch.where(fresh, col, self.NONE), "amin")
        is_first = fresh & (self.first.gather(1, key) == col)
        self.first.scatter_(1, key, self.NONE)
        slot = (count[:, None] + is_first.cumsum(1) - 1).int()
        self.slot.scatter_(1, torch.where(is_first, key, self.slot.shape[1] - 1),
                           torch.where(is_first, slot, -1))
        return is_first


def _merge(toks: _Tokens, tables: _Tables, key, cost, prev, arc):
    """Candidates [B, N] (key: state, the sentinel where none) into the tokens: a candidate
    replaces the token of its state when strictly cheaper (on ties the token, and then the
    first candidate, stays, as FasterDecoder keeps the token it found first); states without
    a token take the next free slots. -> (tokens, changed [B, C], overflow [B])."""
    C = toks.cost.shape[1]
    valid = key < tables.slot.shape[1] - 1
    fresh = valid & (tables.slots_of(key) < 0)  # no token at the state yet
    is_new = tables.new_slots(key, fresh, toks.count)
    slot = tables.slots_of(key)
    best, first = _best_per_slot(torch.where(valid & (slot < C), slot, C), cost, toks.cost)
    changed = best < toks.cost
    cand = first.clamp(max=key.shape[1] - 1)  # [B, C]: the winning candidate's column
    count = toks.count + is_new.sum(1)

    def pick(old, new_values):
        return torch.where(changed, new_values.gather(1, cand), old)

    out = _Tokens(pick(toks.state, key), torch.where(changed, best, toks.cost),
                  pick(toks.prev, prev), pick(toks.arc, arc), count.clamp(max=C))
    return out, changed, count > C


@register_decoder("torch")
class TorchDecoder(Decoder):
    """Batched Viterbi beam search; `decode_batch` returns one Hypothesis (or None) per
    utterance. `capacity`: token slots per utterance and frame to start with (default
    DEFAULT_CAPACITY, at most the graph's states; arc slots follow from it); each kind of slot
    doubles, for good, when a batch overflows it (`self.capacity`)."""

    def __init__(self, graph: DeviceGraph, cfg: DecodeConfig, capacity: int | None = None):
        self.graph, self.cfg = graph, cfg
        tokens = max(1, min(graph.num_states, capacity or DEFAULT_CAPACITY))
        self.capacity = Capacity(tokens, graph.emitting.slots_for(tokens),
                                 graph.epsilon.slots_for(tokens))
        # every state a token, every arc a slot: cannot overflow
        self._most = Capacity(graph.num_states, max(1, graph.emitting.num_arcs),
                             max(1, graph.epsilon.num_arcs))

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device="cpu") -> TorchDecoder:
        return cls(DeviceGraph(hclg, device), cfg)

    @torch.no_grad()
    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        """loglikes: per utterance [T_b, num_pdfs] unscaled log-likelihoods."""
        if not loglikes:
            return []
        ll, lengths = self._scaled(loglikes)
        while True:
            search = self._search(ll, lengths, self.capacity)
            overflowed = search.overflow.tolist()  # read once per try
            if not any(overflowed):
                return self._trace(search, lengths)
            grown = self._grown(overflowed)
            log.info("torch decoder on %s: %s slots overflowed; decoding the batch again with "
                     "%s slots per utterance", self.graph.name,
                     " and ".join(k for k, o in zip(Capacity.KINDS, overflowed) if o), grown)
            self.capacity = grown

    def _grown(self, overflowed: list[bool]) -> Capacity:
        """Twice the slots of each kind that overflowed, at most one per state or arc; arc
        slots at least those new token slots start with."""
        g, most = self.graph, self._most.as_tuple()
        n = [min(2 * c, m) if o else c
             for c, m, o in zip(self.capacity.as_tuple(), most, overflowed, strict=True)]
        grown = Capacity(n[0], max(n[1], g.emitting.slots_for(n[0])),
                         max(n[2], g.epsilon.slots_for(n[0])))
        if grown == self.capacity:
            raise RuntimeError(f"torch decoder: {grown} slots overflowed at their most")
        return grown

    def _scaled(self, loglikes) -> tuple[torch.Tensor, list[int]]:
        """-> [B, T, P] acoustically scaled float32 log-likelihoods on the device, lengths."""
        g, dev = self.graph, self.graph.device
        mats = [torch.as_tensor(x, dtype=torch.float32) for x in loglikes]
        P = mats[0].shape[1]
        if any(m.dim() != 2 or m.shape[1] != P for m in mats):
            raise ValueError("every log-likelihood matrix must be [T, num_pdfs] with one num_pdfs")
        if g.max_pdf >= P:
            raise ValueError(f"the graph uses pdf {g.max_pdf} but the model has only {P} pdfs")
        lengths = [m.shape[0] for m in mats]
        ll = torch.zeros((len(mats), max(lengths), P), dtype=torch.float32, device=dev)
        for b, m in enumerate(mats):
            ll[b, : lengths[b]] = m.to(dev) * self.cfg.acoustic_scale
        return ll, lengths

    def _search(self, ll: torch.Tensor, lengths: list[int], cap: Capacity) -> _Search:
        g, dev = self.graph, self.graph.device
        B, T, _ = ll.shape
        C = cap.tokens
        frames = torch.tensor(lengths, device=dev)
        prev = torch.empty((T + 1, B, C), dtype=torch.int32, device=dev)
        arc = torch.empty_like(prev)
        tables = _Tables.empty(B, g.num_states, dev)
        overflow = torch.zeros((B, 3), dtype=torch.bool, device=dev)  # tokens, arcs, epsilons
        # As FasterDecoder::InitDecoding: the start token at cost 0, its closure within FLT_MAX.
        toks = _Tokens.empty(B, C, g.num_states, dev)
        toks.state[:, 0], toks.cost[:, 0], toks.count[:] = g.start, 0.0, 1
        tables.slot[:, g.start] = 0
        cutoff = torch.full((B,), FLT_MAX, dtype=torch.float64, device=dev)
        toks = self._closure(toks, tables, cutoff, cap, overflow)
        prev[0], arc[0] = toks.prev, toks.arc
        for t in range(T):
            with sync_region("decoder frame"):
                active = frames > t
                new = self._frame(toks, tables, ll[:, t], active, cap, overflow)
                toks = new.where(active, toks)
                prev[t + 1], arc[t + 1] = new.prev, new.arc
        return _Search(toks, prev, arc, overflow.any(0))

    def _frame(self, toks: _Tokens, tables: _Tables, ll_t: torch.Tensor, active: torch.Tensor,
               cap: Capacity, overflow: torch.Tensor) -> _Tokens:
        """One frame for every utterance (rows not `active` expand nothing). ll_t: [B, P]."""
        cutoff, adaptive_beam = self._cutoff(toks.cost)
        tables.forget(toks)
        new, next_cutoff = self._emit(toks, tables, ll_t, cutoff, adaptive_beam, active,
                                      cap, overflow)
        return self._closure(new, tables, next_cutoff, cap, overflow)

    def _cutoff(self, cost: torch.Tensor):
        """FasterDecoder::GetCutoff per utterance: cost [B, C] -> (cutoff, adaptive beam) [B].
        Kaldi takes the max/min-active cutoffs from a float copy of the costs: so do we."""
        cfg, C = self.cfg, cost.shape[1]
        beam = _f32(cfg.beam)
        best = cost.min(1).values
        beam_cutoff = best + beam
        # at most min_active tokens: +inf; min_active 0: the best, which never loosens it
        if cfg.min_active >= C:
            min_cutoff = torch.full_like(best, INF)
        else:
            min_cutoff = _f32(torch.kthvalue(cost, cfg.min_active + 1, dim=1).values)
        looser = min_cutoff > beam_cutoff
        cutoff = torch.where(looser, min_cutoff, beam_cutoff)
        adaptive = torch.where(looser, _f32(min_cutoff - best + _f32(cfg.beam_delta)), beam)
        if cfg.max_active < C:  # more than max_active tokens: the (max_active + 1)-th cost
            max_cutoff = _f32(torch.kthvalue(cost, cfg.max_active + 1, dim=1).values)
            tighter = max_cutoff < beam_cutoff  # checked first in Kaldi: it wins
            cutoff = torch.where(tighter, max_cutoff, cutoff)
            adaptive = torch.where(tighter, _f32(max_cutoff - best + _f32(cfg.beam_delta)),
                                   adaptive)
        return cutoff, adaptive

    def _emit(self, toks: _Tokens, tables: _Tables, ll_t, cutoff, adaptive_beam, active,
              cap: Capacity, overflow: torch.Tensor):
        """FasterDecoder::ProcessEmitting for every utterance at once. -> (the new frame's
        tokens, the epsilon cutoff [B])."""
        g, S = self.graph.emitting, self.graph.num_states
        live = (toks.cost < cutoff[:, None]) & active[:, None]
        tok, arc, valid, full = g.expand(toks.state, live, cap.emitting)
        ac_cost = -ll_t.gather(1, at(g.pdf, arc))  # float32, as DecodableCtc gives it
        cost = (toks.cost.gather(1, tok) + at(g.weight, arc)) + ac_cost.double()
        cost = torch.where(valid, cost, INF)
        # FasterDecoder's next_weight_cutoff once all arcs are seen: best + adaptive beam
        next_cutoff = cost.min(1).values + adaptive_beam
        keep = cost < next_cutoff[:, None]
        empty = _Tokens.empty(*toks.cost.shape, S, cost.device)
        new, _, too_many = _merge(empty, tables, torch.where(keep, at(g.dst, arc), S), cost, tok,
                                  arc + g.base)
        overflow[:, 0] |= too_many
        overflow[:, 1] |= full
        return new, next_cutoff

    def _closure(self, toks: _Tokens, tables: _Tables, cutoff: torch.Tensor,
                 cap: Capacity, overflow: torch.Tensor) -> _Tokens:
        """FasterDecoder::ProcessNonemitting: epsilon depth rounds, each from the tokens that
        changed in the round before (the first: all), within `cutoff` [B] (inclusive, as
        Kaldi's)."""
        g, S = self.graph.epsilon, self.graph.num_states
        changed = torch.isfinite(toks.cost)
        for _ in range(self.graph.epsilon_depth):
            live = changed & (toks.cost <= cutoff[:, None])
            tok, arc, valid, full = g.expand(toks.state, live, cap.epsilon)
            cost = toks.cost.gather(1, tok) + at(g.weight, arc)
            ok = valid & (cost <= cutoff[:, None])
            key = torch.where(ok, at(g.dst, arc), S)
            toks, changed, too_many = _merge(toks, tables, key, cost, tok, arc + g.base)
            overflow[:, 0] |= too_many
            overflow[:, 2] |= full
        return toks

    def _trace(self, search: _Search, lengths: list[int]) -> list[Hypothesis | None]:
        """Best token of each utterance's last frame (final states first, as FasterDecoder's
        GetBestPath), then back along the back-pointers, on the host."""
        g = self.graph
        prev, arc = search.prev.cpu().numpy(), search.arc.cpu().numpy()
        state, cost = search.last.state.cpu().numpy(), search.last.cost.cpu().numpy()
        final = np.append(g.final, np.inf)  # the empty slots' sentinel state is not final
        out: list[Hypothesis | None] = []
        for b, f in enumerate(lengths):
            with_final = cost[b] + final[state[b]]
            reached = bool(np.isfinite(with_final).any())
            score = with_final if reached else cost[b]
            r = int(np.argmin(score))
            if not np.isfinite(score[r]):
                out.append(None)
                continue
            words, pdfs = [], []
            while (a := int(arc[f, b, r])) >= 0:
                if g.arc_olabel[a] > 0:
                    words.append(int(g.arc_olabel[a]))
                if g.arc_pdf[a] >= 0:
                    pdfs.append(int(g.arc_pdf[a]))
                r = int(prev[f, b, r])
                f -= a < g.epsilon.base  # an emitting arc came from the frame before
            out.append(Hypothesis(words[::-1], np.array(pdfs[::-1], dtype=np.int64),
                                  float(score.min()), reached))
        return out
