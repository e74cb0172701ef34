"""Moving OpenFst graphs between kaldifst and flat arrays.

kaldifst has no mutable arc iterator, project or rmsymbols, so relabelling and graph surgery is
done on arrays (one row per arc) and the result compiled back from AT&T text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import kaldifst
import numpy as np


@dataclass
class FstArrays:
    """An FST as arrays: arc k goes src[k] -> dst[k], labels ilabel[k]:olabel[k], cost weight[k].

    `final[s]` is the final cost of state s (inf if not final). Costs are tropical (-log prob).
    """

    num_states: int
    start: int
    src: np.ndarray  # [A] int64
    dst: np.ndarray  # [A] int64
    ilabel: np.ndarray  # [A] int64
    olabel: np.ndarray  # [A] int64
    weight: np.ndarray  # [A] float32
    final: np.ndarray  # [S] float32

    @property
    def num_arcs(self) -> int:
        return len(self.src)


def to_arrays(fst: kaldifst.StdVectorFst) -> FstArrays:
    """Read every arc and final weight of `fst` (states keep their numbers)."""
    n = fst.num_states
    final = np.full(n, np.inf, dtype=np.float32)
    rows = []
    for line in fst.to_str(show_weight_one=True).splitlines():
        f = line.split()
        if len(f) == 5:
            rows.append(f)
        elif len(f) == 2:
            final[int(f[0])] = float(f[1])
        elif len(f) == 1:
            final[int(f[0])] = 0.0
        elif len(f) == 4:
            rows.append(f + ["0"])
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return FstArrays(
        num_states=n,
        start=fst.start,
        src=arr[:, 0].astype(np.int64),
        dst=arr[:, 1].astype(np.int64),
        ilabel=arr[:, 2].astype(np.int64),
        olabel=arr[:, 3].astype(np.int64),
        weight=arr[:, 4].astype(np.float32),
        final=final,
    )


def to_arrays_exact(fst: kaldifst.StdVectorFst) -> FstArrays:
    """to_arrays with the weights as stored (float32), read arc by arc. OpenFst's printer,
    which to_arrays parses, keeps 6 significant digits of a weight (up to ~5e-6 off on an
    HCLG): enough to move a token across a decoder's float32 max-active cutoff."""
    n = fst.num_states
    final = np.array([fst.final(s).value for s in range(n)], dtype=np.float32)
    rows = []
    for s in range(n):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            arc = it.value
            rows.append((s, arc.nextstate, arc.ilabel, arc.olabel, arc.weight.value))
            it.next()
    cols = list(zip(*rows)) if rows else [()] * 5
    return FstArrays(n, fst.start, *(np.array(c, dtype=np.int64) for c in cols[:4]),
                     weight=np.array(cols[4], dtype=np.float32), final=final)


def from_arrays(a: FstArrays) -> kaldifst.StdVectorFst:
    """Compile arrays back into a kaldifst.StdVectorFst with the same state numbers."""
    buf = io.StringIO()
    # OpenFst takes the first state listed in the text as the start state.
    order = np.argsort(a.src != a.start, kind="stable")
    if not (a.src == a.start).any():
        buf.write(f"{a.start} {a.final[a.start]:.9g}\n")
    for k in order:
        buf.write(f"{a.src[k]} {a.dst[k]} {a.ilabel[k]} {a.olabel[k]} {a.weight[k]:.9g}\n")
    finals = np.nonzero(np.isfinite(a.final))[0]
    for s in finals:
        buf.write(f"{s} {a.final[s]:.9g}\n")
    fst = kaldifst.compile(buf.getvalue(), keep_state_numbering=True)
    if fst.start != a.start:
        raise RuntimeError(f"start state moved from {a.start} to {fst.start} while compiling")
    return fst


def compile_text(text: str) -> kaldifst.StdVectorFst:
    """Compile AT&T text (integer labels) into an FST."""
    return kaldifst.compile(text)


def read_fst(path) -> kaldifst.StdVectorFst:
    return kaldifst.StdVectorFst.read(str(path))


def write_fst(fst: kaldifst.StdVectorFst, path) -> None:
    from asr_kd.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fst.write(str(tmp))


def read_symbols(path) -> dict[str, int]:
    """Read a Kaldi symbol table (`symbol id` per line)."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'symbol id', got {line.rstrip()!r}")
            table[parts[0]] = int(parts[1])
    return table
