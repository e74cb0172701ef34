"""OpenFst binary files read and written with numpy (asr_kd.utils.fst), against kaldifst's own
reader, writer and arc iterator: same states, arcs, labels and float32 weights, bit for bit."""

from __future__ import annotations

import kaldifst
import numpy as np
import pytest

from asr_kd.utils.fst import (
    FstArrays,
    add_output_arc_cost,
    from_arrays,
    read_fst,
    read_fst_arrays,
    to_arrays,
    write_fst_arrays,
)


def random_fst(seed: int, num_states: int = 300, num_arcs: int = 2000) -> kaldifst.StdVectorFst:
    """A random FST with epsilons, parallel arcs, self-loops, states without arcs, several final
    states and weights that need all of float32's digits."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, num_states, num_arcs)
    src[0] = 0
    lines = [f"{s} {rng.integers(0, num_states)} {rng.integers(0, 50)} {rng.integers(0, 9000)} "
             f"{np.float32(rng.normal(2, 3)):.9g}" for s in src]
    lines += [f"{s} {np.float32(rng.exponential()):.9g}"
              for s in rng.choice(num_states, 20, replace=False)]
    return kaldifst.compile("\n".join(lines) + "\n", keep_state_numbering=True)


def iterated(fst) -> FstArrays:
    """The oracle: kaldifst's arc iterator, one arc at a time."""
    n = fst.num_states
    rows = []
    for s in range(n):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            arc = it.value
            rows.append((s, arc.nextstate, arc.ilabel, arc.olabel, arc.weight.value))
            it.next()
    c = list(zip(*rows))
    return FstArrays(n, fst.start, *(np.array(x, dtype=np.int64) for x in c[:4]),
                     weight=np.array(c[4], dtype=np.float32),
                     final=np.array([fst.final(s).value for s in range(n)], dtype=np.float32))


def assert_same(a: FstArrays, b: FstArrays) -> None:
    assert (a.num_states, a.start, a.num_arcs) == (b.num_states, b.start, b.num_arcs)
    for k in ("src", "dst", "ilabel", "olabel"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    np.testing.assert_array_equal(a.weight.view(np.int32), b.weight.view(np.int32))
    np.testing.assert_array_equal(a.final.view(np.int32), b.final.view(np.int32))


@pytest.mark.parametrize("seed", [0, 1])
def test_read_vector_fst_matches_kaldifst(tmp_path, seed):
    fst = random_fst(seed)
    fst.write(str(tmp_path / "g.fst"))
    assert_same(read_fst_arrays(tmp_path / "g.fst"), iterated(fst))
    assert_same(to_arrays(fst), iterated(fst))


def test_read_const_fst_matches_kaldifst(tmp_path):
    fst = random_fst(2)
    kaldifst.StdConstFst(fst).write(str(tmp_path / "g.fst"))
    assert_same(read_fst_arrays(tmp_path / "g.fst"), iterated(fst))


def test_written_file_is_kaldifsts_own_but_for_the_properties(tmp_path):
    fst = random_fst(3)
    fst.write(str(tmp_path / "theirs.fst"))
    write_fst_arrays(iterated(fst), tmp_path / "ours.fst")
    theirs, ours = (tmp_path / "theirs.fst").read_bytes(), (tmp_path / "ours.fst").read_bytes()
    props = slice(34, 42)  # magic, "vector", "standard", version, flags: then the properties
    assert len(ours) == len(theirs)
    assert ours[:props.start] + ours[props.stop:] == theirs[:props.start] + theirs[props.stop:]
    back = kaldifst.StdVectorFst.read(str(tmp_path / "ours.fst"))
    assert back.to_str(show_weight_one=True) == fst.to_str(show_weight_one=True)


def test_from_arrays_keeps_start_and_arc_order_of_unsorted_arrays():
    a = iterated(random_fst(4))
    perm = np.random.default_rng(0).permutation(a.num_arcs)
    shuffled = FstArrays(a.num_states, 7, a.src[perm], a.dst[perm], a.ilabel[perm],
                         a.olabel[perm], a.weight[perm], a.final)
    back = to_arrays(from_arrays(shuffled))
    assert back.start == 7
    order = np.argsort(shuffled.src, kind="stable")  # within a state, the order given
    for k in ("src", "dst", "ilabel", "olabel", "weight"):
        np.testing.assert_array_equal(getattr(back, k), getattr(shuffled, k)[order])


def test_not_an_fst_is_named(tmp_path):
    (tmp_path / "G.fst").write_text("0 1 2 2 0.5\n1\n")
    with pytest.raises(ValueError, match=r"^.*G\.fst: not an OpenFst binary FST of StdArc "
                                         r"\(bad magic number\)$"):
        read_fst_arrays(tmp_path / "G.fst")
    fst = random_fst(5)
    fst.write(str(tmp_path / "cut.fst"))
    (tmp_path / "cut.fst").write_bytes((tmp_path / "cut.fst").read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"cut\.fst: damaged vector FST \(the file ends "
                                         r"inside the arcs of state 299\)$"):
        read_fst_arrays(tmp_path / "cut.fst")


def test_output_arc_cost_patched_into_the_file_equals_the_arrays_sum():
    a = iterated(random_fst(6))
    a.olabel[::3] = 0  # epsilon outputs: their cost must not change
    fst = from_arrays(a)
    b = iterated(add_output_arc_cost(fst, 0.7))
    expected = np.where(a.olabel != 0, a.weight + np.float32(0.7), a.weight).astype(np.float32)
    np.testing.assert_array_equal(b.weight.view(np.int32), expected.view(np.int32))
    for k in ("src", "dst", "ilabel", "olabel"):
        np.testing.assert_array_equal(getattr(b, k), getattr(a, k))
    np.testing.assert_array_equal(b.final.view(np.int32), a.final.view(np.int32))
    assert (a.olabel == 0).any() and (a.olabel != 0).any()


def test_read_fst_names_a_missing_or_foreign_file(tmp_path):
    """kaldifst's own reader returns None for both; ours says which file and why."""
    with pytest.raises(FileNotFoundError, match=r"HCLG\.fst: no such FST file$"):
        read_fst(tmp_path / "HCLG.fst")
    (tmp_path / "G.fst").write_text("0 1 2 2 0.5\n1\n")
    with pytest.raises(ValueError, match=r"G\.fst: not an OpenFst binary VectorFst or "
                                         r"ConstFst of StdArc$"):
        read_fst(tmp_path / "G.fst")


def test_read_fst_takes_a_const_graph_as_kaldis_mkgraph_writes_it(tmp_path):
    fst = random_fst(7)
    kaldifst.StdConstFst(fst).write(str(tmp_path / "HCLG.fst"))
    back = read_fst(tmp_path / "HCLG.fst")
    assert isinstance(back, kaldifst.StdVectorFst)
    assert back.to_str(show_weight_one=True) == fst.to_str(show_weight_one=True)
