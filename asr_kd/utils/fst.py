"""Moving OpenFst graphs between kaldifst and flat arrays.

kaldifst has no mutable arc iterator, project or rmsymbols, so relabelling and graph surgery is
done on arrays (one row per arc). Arrays and FSTs meet through OpenFst's binary format, read
and written here with numpy: exact weights and no text, so graphs of tens of millions of arcs
fit (tests/test_fst_binary.py checks it against kaldifst's own reader and writer).
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def read_fst_arrays(path) -> FstArrays:
    """Read an OpenFst binary file (VectorFst or ConstFst of StdArc) straight into arrays.

    No text and no kaldifst object on the way: about 36 bytes per arc of arrays, where parsing
    OpenFst's printed text costs ~0.4 KB per arc in Python lists (12-20 GB for a 30-50M-arc
    HCLG), and the weights are the stored float32 values (the printer keeps 6 digits).
    Symbol tables stored in the file are skipped.
    """
    buf = Path(path).read_bytes()
    try:
        h = _read_header(buf)
    except (ValueError, struct.error) as e:
        raise ValueError(f"{path}: not an OpenFst binary FST of StdArc ({e})") from None
    if h["fst_type"] not in ("vector", "const"):
        raise ValueError(f"{path}: FST type '{h['fst_type']}' (only vector and const are read)")
    try:
        a = (_vector_body if h["fst_type"] == "vector" else _const_body)(buf, h)
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: damaged {h['fst_type']} FST ({e})") from None
    if a.num_arcs and (a.dst.max() >= a.num_states or a.dst.min() < 0):
        raise ValueError(f"{path}: damaged {h['fst_type']} FST (an arc leads to a state "
                         f"outside 0..{a.num_states - 1})")
    return a


def write_fst_arrays(a: FstArrays, path) -> None:
    """Write arrays as an OpenFst binary VectorFst (what kaldifst's write gives), atomically.

    Arcs keep their order within a state. The header claims no properties beyond the type's
    own (expanded, mutable): OpenFst computes any other when an operation asks for it.
    """
    from asr_kd.utils.io import atomic_path

    order = np.argsort(a.src, kind="stable")
    narcs = np.bincount(a.src, minlength=a.num_states).astype(np.int64)
    # The body as int32 words: per state final (float32 bits), narcs (int64 = 2 words), then
    # 4 words per arc: ilabel, olabel, weight (float32 bits), nextstate.
    first_word = 3 * np.arange(a.num_states, dtype=np.int64) + 4 * (np.cumsum(narcs) - narcs)
    body = np.zeros(3 * a.num_states + 4 * a.num_arcs, dtype=np.int32)
    body[first_word] = a.final.astype(np.float32).view(np.int32)
    body[first_word + 1] = narcs.astype(np.int32)
    at = np.repeat(first_word + 3, narcs) + 4 * _rank_in_state(narcs)
    body[at] = a.ilabel[order]
    body[at + 1] = a.olabel[order]
    body[at + 2] = a.weight[order].astype(np.float32).view(np.int32)
    body[at + 3] = a.dst[order]
    header = b"".join([
        struct.pack("<i", _MAGIC), _string("vector"), _string("standard"),
        struct.pack("<iiQqqq", 2, 0, _EXPANDED | _MUTABLE, a.start, a.num_states, 0)])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(body.astype("<i4", copy=False).tobytes())


def to_arrays(fst: kaldifst.StdVectorFst) -> FstArrays:
    """Every arc and final weight of `fst` (states keep their numbers; weights exact), through
    a binary file: kaldifst has no bulk arc access, and text or per-arc iteration is slow."""
    with tempfile.TemporaryDirectory() as tmp:
        fst.write(f"{tmp}/fst")
        return read_fst_arrays(f"{tmp}/fst")


def from_arrays(a: FstArrays) -> kaldifst.StdVectorFst:
    """A kaldifst.StdVectorFst with the same states, arcs and weights, through a binary file."""
    with tempfile.TemporaryDirectory() as tmp:
        write_fst_arrays(a, f"{tmp}/fst")
        return kaldifst.StdVectorFst.read(f"{tmp}/fst")


# OpenFst's binary format (fst.h FstHeader, vector-fst.h, const-fst.h), little-endian.
_MAGIC = 2125659606
_EXPANDED, _MUTABLE = 0x1, 0x2
_HAS_ISYMBOLS, _HAS_OSYMBOLS, _IS_ALIGNED = 0x1, 0x2, 0x4
_SYMBOL_TABLE_MAGIC = 2125658996
_ALIGNMENT = 16


def _rank_in_state(narcs: np.ndarray) -> np.ndarray:
    """For arcs grouped by state (narcs[s] of them for state s), each arc's index in its group."""
    return np.arange(int(narcs.sum())) - np.repeat(np.cumsum(narcs) - narcs, narcs)


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<i", len(b)) + b


def _read_header(buf: bytes) -> dict:
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return vals if len(vals) > 1 else vals[0]

    def string():
        n = take("<i")
        nonlocal pos
        pos += n
        return buf[pos - n:pos].decode("utf-8", "replace")

    if take("<i") != _MAGIC:
        raise ValueError("bad magic number")
    fst_type, arc_type = string(), string()
    if arc_type != "standard":
        raise ValueError(f"arc type '{arc_type}', not 'standard'")
    version, flags, _props, start, num_states, num_arcs = take("<iiQqqq")
    for flag in (_HAS_ISYMBOLS, _HAS_OSYMBOLS):  # skip a stored symbol table
        if flags & flag:
            if take("<i") != _SYMBOL_TABLE_MAGIC:
                raise ValueError("bad symbol table")
            string()
            _available, size = take("<qq")
            for _ in range(size):
                string()
                take("<q")
    return dict(fst_type=fst_type, version=version, flags=flags, start=start,
                num_states=num_states, num_arcs=num_arcs, body=pos)


def _vector_layout(buf, h: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A VectorFst body's records, as int32-word offsets from the body's start: each state's
    first word (its final weight), its arc count, each arc's first word (its ilabel), and the
    body's length in words."""
    words = memoryview(buf)[h["body"]:]
    words = words[:len(words) - len(words) % 4].cast("i")
    n = h["num_states"]
    if n < 0:
        raise ValueError("a VectorFst without its state count (written to a pipe) is not read")
    first = np.empty(n, dtype=np.int64)
    narcs = np.empty(n, dtype=np.int64)
    pos = 0
    end = len(words)
    for s in range(n):  # states are variable-length records: one pass to find them
        if pos + 3 > end:
            raise ValueError(f"the file ends inside state {s} of {n}")
        first[s] = pos
        k = words[pos + 1]
        narcs[s] = k
        pos += 3 + 4 * k
    if pos > end:
        raise ValueError(f"the file ends inside the arcs of state {n - 1}")
    return first, narcs, np.repeat(first + 3, narcs) + 4 * _rank_in_state(narcs), pos


def _vector_body(buf: bytes, h: dict) -> FstArrays:
    first, narcs, at, words = _vector_layout(buf, h)
    n = h["num_states"]
    body = np.frombuffer(buf, dtype="<i4", offset=h["body"], count=words)
    return FstArrays(
        num_states=n, start=h["start"], src=np.repeat(np.arange(n, dtype=np.int64), narcs),
        dst=body[at + 3].astype(np.int64), ilabel=body[at].astype(np.int64),
        olabel=body[at + 1].astype(np.int64), weight=body[at + 2].view("<f4").astype(np.float32),
        final=body[first].view("<f4").astype(np.float32))


def add_output_arc_cost(fst: kaldifst.StdVectorFst, cost: float) -> kaldifst.StdVectorFst:
    """A copy of `fst` with `cost` added to every arc whose output label is not epsilon, made by
    patching the weights in its binary file: no arrays of the whole graph, so a copy of a
    50M-arc HCLG costs about its file's size in passing."""
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/fst"
        fst.write(path)
        buf = bytearray(Path(path).read_bytes())
        h = _read_header(buf)
        _, _, at, words = _vector_layout(buf, h)
        body = np.frombuffer(buf, dtype="<i4", offset=h["body"], count=words)
        weights = body.view("<f4")  # the same memory: writes go into buf
        words_out = at[body[at + 1] != 0] + 2
        weights[words_out] = weights[words_out] + np.float32(cost)
        del body, weights
        Path(path).write_bytes(buf)
        return kaldifst.StdVectorFst.read(path)


def _const_body(buf: bytes, h: dict) -> FstArrays:
    pos, n, m = h["body"], h["num_states"], h["num_arcs"]
    aligned = h["flags"] & _IS_ALIGNED

    def align(p):
        return -(-p // _ALIGNMENT) * _ALIGNMENT if aligned else p

    state_t = np.dtype([("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("nie", "<u4"),
                        ("noe", "<u4")])
    arc_t = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"),
                      ("nextstate", "<i4")])
    pos = align(pos)
    states = np.frombuffer(buf, dtype=state_t, count=n, offset=pos)
    pos = align(pos + n * state_t.itemsize)
    arcs = np.frombuffer(buf, dtype=arc_t, count=m, offset=pos)
    narcs = states["narcs"].astype(np.int64)
    idx = np.repeat(states["pos"].astype(np.int64), narcs) + _rank_in_state(narcs)
    arcs = arcs[idx]
    return FstArrays(
        num_states=n, start=h["start"], src=np.repeat(np.arange(n, dtype=np.int64), narcs),
        dst=arcs["nextstate"].astype(np.int64), ilabel=arcs["ilabel"].astype(np.int64),
        olabel=arcs["olabel"].astype(np.int64), weight=arcs["weight"].astype(np.float32),
        final=states["final"].astype(np.float32))


def compile_text(text: str) -> kaldifst.StdVectorFst:
    """Compile AT&T text (integer labels) into an FST."""
    return kaldifst.compile(text)


def read_fst(path) -> kaldifst.StdVectorFst:
    """A binary VectorFst, or a ConstFst (as Kaldi's mkgraph.sh writes HCLG) made a VectorFst.
    kaldifst itself returns None for a missing or foreign file: this names it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such FST file")
    with open(path, "rb") as f:
        head = f.read(64)
    is_const = head[4:13] == _string("const")
    fst = (kaldifst.StdConstFst if is_const else kaldifst.StdVectorFst).read(str(path))
    if fst is None:
        raise ValueError(f"{path}: not an OpenFst binary VectorFst or ConstFst of StdArc")
    return kaldifst.StdVectorFst(fst) if is_const else fst


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
