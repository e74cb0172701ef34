"""The decoding graph on a device, for the torch decoder (torch_decoder.py): an HCLG (input
labels pdf id + 1, output labels word ids) as CSR tensors, one set for the emitting arcs and
one for the input-epsilon arcs, with what the search needs to know in advance: the graph's
epsilon depth (the longest chain of input-epsilon arcs; a cycle is refused) and its largest
out-degrees. Weights are read as stored (to_arrays), not as OpenFst prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kaldifst
import numpy as np
import torch

from asr_kd.utils.fst import FstArrays, to_arrays


@dataclass
class Csr:
    """Arcs of one kind grouped by source state: arcs of s are ptr[s]:ptr[s + 1]; the decoder
    numbers them base, base + 1, ... in back-pointers."""

    ptr: torch.Tensor  # [S + 1] int64
    dst: torch.Tensor  # [A] int64
    pdf: torch.Tensor  # [A] int64 (ilabel - 1; -1 for epsilon arcs)
    olabel: torch.Tensor  # [A] int64
    weight: torch.Tensor  # [A] float64 (float32 values, as OpenFst's)
    base: int
    max_degree: int

    @classmethod
    def build(cls, a: FstArrays, keep: np.ndarray, base: int, device) -> Csr:
        order = np.argsort(a.src[keep], kind="stable")
        degree = np.bincount(a.src[keep], minlength=a.num_states)
        ptr = np.zeros(a.num_states + 1, dtype=np.int64)
        np.cumsum(degree, out=ptr[1:])

        def t(x, dtype=torch.int64):
            return torch.as_tensor(np.ascontiguousarray(x[keep][order]), dtype=dtype, device=device)

        return cls(torch.as_tensor(ptr, device=device), t(a.dst), t(a.ilabel) - 1, t(a.olabel),
                   t(a.weight, torch.float64), base, int(degree.max(initial=0)))

    @property
    def num_arcs(self) -> int:
        return len(self.dst)

    def slots_for(self, tokens: int) -> int:
        """Arc slots to start with for `tokens` tokens of one utterance: twice their share of
        the arcs and one more state's worth, never more than all arcs (each state holds one
        token, so that many cannot overflow)."""
        share = 2 * tokens * self.num_arcs / (len(self.ptr) - 1)
        return max(1, min(self.num_arcs, math.ceil(share) + self.max_degree))

    def expand(self, state: torch.Tensor, live: torch.Tensor, num_slots: int):
        """The arcs leaving the live tokens, in `num_slots` slots per row. state, live: [B, C]
        -> token slot [B, A], arc [B, A] (0 where not valid), valid [B, A], overflow [B] (more
        arcs than slots). Slot j of a row holds arc j - start of the token whose arcs
        start..end cover j: repeat_interleave of the token numbers by their out-degrees, with a
        last token per row padding it to exactly num_slots, so its size is known in advance."""
        B, C = state.shape
        s = state.clamp(max=len(self.ptr) - 2)  # empty slots hold the sentinel num_states
        first = at(self.ptr, s)
        degree = torch.where(live, at(self.ptr, s + 1) - first, 0)
        end = degree.cumsum(1)  # [B, C]: one past each token's last arc slot
        start = end - degree
        total = end[:, -1:]
        within = torch.cat([end.clamp(max=num_slots) - start.clamp(max=num_slots),
                            num_slots - total.clamp(max=num_slots)], 1)  # [B, C + 1]
        tokens = torch.arange(B * (C + 1), device=state.device)
        tok = torch.repeat_interleave(tokens, within.view(-1), output_size=B * num_slots)
        tok = tok.view(B, num_slots) - (C + 1) * torch.arange(B, device=state.device)[:, None]
        valid = tok < C
        tok = tok.clamp(max=C - 1)
        j = torch.arange(num_slots, device=state.device)
        arc = first.gather(1, tok) + j - start.gather(1, tok)
        return tok, torch.where(valid, arc, 0), valid, total[:, 0] > num_slots


def at(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 1-d table (index_select: several times faster on the CPU)."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def epsilon_depth(src: np.ndarray, dst: np.ndarray, num_states: int, name: str) -> int:
    """The longest chain of input-epsilon arcs (src -> dst), by peeling the arcs whose source
    no remaining arc enters, level by level; ValueError naming `name` if they form a cycle."""
    indegree = np.bincount(dst, minlength=num_states)
    left = np.ones(len(src), dtype=bool)
    depth = 0
    while left.any():
        peel = left & (indegree[src] == 0)
        if not peel.any():
            cycle = _a_cycle(src[left], dst[left])
            raise ValueError(f"{name}: its input-epsilon arcs form a cycle ("
                             f"{' -> '.join(map(str, cycle))}); the torch decoder follows "
                             "epsilon arcs a fixed number of rounds per frame and needs none")
        np.subtract.at(indegree, dst[peel], 1)
        left &= ~peel
        depth += 1
    return depth


def _a_cycle(src: np.ndarray, dst: np.ndarray) -> list[int]:
    """One cycle, from its smallest state back to it, among arcs every one of whose sources
    has an arc entering it."""
    pred = dict(zip(dst.tolist(), src.tolist()))
    s = int(dst[0])
    for _ in range(len(pred)):  # walking back that far lands on a cycle
        s = pred[s]
    back = [s]
    while pred[back[-1]] != s:
        back.append(pred[back[-1]])
    cycle = back[::-1]
    i = cycle.index(min(cycle))
    return cycle[i:] + cycle[:i + 1]


class DeviceGraph:
    """An HCLG (input labels pdf id + 1, output labels word ids) as CSR tensors on a device."""

    def __init__(self, fst: kaldifst.StdVectorFst | FstArrays, device="cpu",
                 name: str = "the decoding graph"):
        a = fst if isinstance(fst, FstArrays) else to_arrays(fst)
        if a.num_states == 0 or a.start < 0:
            raise ValueError(f"{name} is empty (no start state)")
        emitting = a.ilabel > 0
        if not emitting.any():
            raise ValueError(f"{name} has no emitting arcs")
        self.name, self.num_states, self.start = name, a.num_states, a.start
        self.device = torch.device(device)
        self.emitting = Csr.build(a, emitting, 0, self.device)
        self.epsilon = Csr.build(a, ~emitting, self.emitting.num_arcs, self.device)
        self.epsilon_depth = epsilon_depth(a.src[~emitting], a.dst[~emitting], a.num_states, name)
        self.final = a.final.astype(np.float64)  # [S] on the host, for the traceback
        self.max_pdf = int(a.ilabel.max()) - 1
        # per back-pointer arc number (emitting arcs, then epsilon arcs): its word and pdf
        self.arc_olabel = torch.cat([self.emitting.olabel, self.epsilon.olabel]).cpu().numpy()
        self.arc_pdf = torch.cat([self.emitting.pdf, self.epsilon.pdf]).cpu().numpy()
