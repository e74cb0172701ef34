"""The batched torch decoder against kaldi-decoder's FasterDecoder (the reference): small graphs
with epsilon arcs, batches of different lengths, dead ends, max-active, and real yesno models."""

from __future__ import annotations

import numpy as np
import pytest

from asr_kd.decode import DecodeConfig, DeviceGraph, ReferenceDecoder, TorchDecoder
from asr_kd.utils.fst import compile_text
from tests.conftest import decoders_agree

# Input labels are pdf id + 1; input-epsilon arcs carry the words and a chain of two epsilons
# (3 -> 4 -> 0) leads back to the start, as word ends and backoff arcs do in an HCLG.
EPSILON_GRAPH = """0 1 1 0 0.5
0 2 2 0 0.7
1 1 1 0 0.1
1 2 3 0 0.9
1 3 0 10 0.2
2 2 2 0 0.1
2 3 0 20 0.3
3 4 0 0 0.25
4 0 0 0 0.05
4 5 3 30 1.5
5 5 3 0 0.2
3 0.0
5 0.5
"""


def _both(graph: str, mats, **cfg):
    fst = compile_text(graph)
    c = DecodeConfig(**cfg)
    ref = ReferenceDecoder(fst, c)
    return ref.decode_batch(mats), TorchDecoder(DeviceGraph(fst), c).decode_batch(mats)


def _same(r, h):
    assert (r is None) == (h is None)
    if r is not None:
        assert h.words == r.words
        np.testing.assert_array_equal(h.pdf_alignment, r.pdf_alignment)
        assert h.cost == pytest.approx(r.cost, abs=1e-3)
        assert h.reached_final == r.reached_final


def test_epsilon_arcs_and_mixed_lengths_match_the_reference():
    rng = np.random.default_rng(0)
    lengths = [1, 2, 7, 30, 64, 3, 64, 15]
    mats = [rng.normal(0, 3, size=(n, 3)).astype(np.float32) for n in lengths]
    refs, ours = _both(EPSILON_GRAPH, mats, acoustic_scale=1.0, beam=30.0)
    words = set()
    for r, h in zip(refs, ours, strict=True):
        _same(r, h)
        words.update(h.words)
        assert len(h.pdf_alignment) == len(r.pdf_alignment)
    assert {10, 20} <= words  # paths through the epsilon arcs' words were taken
    # Each utterance alone gives what it gave in the batch.
    for m, h in zip(mats, ours, strict=True):
        _same(h, _both(EPSILON_GRAPH, [m], acoustic_scale=1.0, beam=30.0)[1][0])


def test_no_final_state_reached_keeps_the_best_token_as_kaldi_does():
    # pdf 0 as long as it likes, then two frames of pdf 1 to the final state: two frames in
    # all cannot reach it.
    graph = "0 1 1 0 0\n1 1 1 0 0.5\n1 2 2 0 0\n2 3 2 5 0\n3 0\n"
    mats = [np.array([[0.0, -9.0], [0.0, -9.0]], dtype=np.float32)]
    refs, ours = _both(graph, mats, acoustic_scale=1.0)
    _same(refs[0], ours[0])
    assert ours[0].reached_final is False and list(ours[0].pdf_alignment) == [0, 0]


def test_a_dead_end_gives_no_hypothesis_and_spares_the_rest_of_the_batch():
    graph = "0 1 1 7 0.0\n1 0.0\n"  # exactly one frame of pdf 0
    mats = [np.zeros((3, 1), np.float32), np.zeros((1, 1), np.float32)]
    refs, ours = _both(graph, mats)
    assert refs[0] is None and ours[0] is None
    _same(refs[1], ours[1])
    assert ours[1].words == [7] and ours[1].reached_final


def test_max_active_prunes_to_the_best_tokens():
    # Three branches (words 1, 2, 3) ranked 1, 2, 3 after the first frame; word 3 wins the
    # utterance, but max_active 2 (kaldi-decoder's smallest) drops it after the first frame.
    graph = "0 1 1 1 0\n0 2 2 2 0\n0 3 3 3 0\n1 4 4 0 0\n2 5 5 0 0\n3 6 6 0 0\n4 0\n5 0\n6 0\n"
    ll = np.full((2, 6), -50.0, np.float32)
    ll[0, :3] = [-1.0, -2.0, -3.0]
    ll[1, 3:] = [-10.0, -8.0, -1.0]
    wide_ref, wide = _both(graph, [ll], acoustic_scale=1.0)
    narrow_ref, narrow = _both(graph, [ll], acoustic_scale=1.0, max_active=2, min_active=0)
    assert wide[0].words == [3] and wide[0].cost == pytest.approx(4.0)
    assert narrow[0].words == [2] and narrow[0].cost == pytest.approx(10.0)
    _same(wide_ref[0], wide[0])
    _same(narrow_ref[0], narrow[0])


def test_bad_input_is_refused_with_a_clear_message():
    dec = TorchDecoder(DeviceGraph(compile_text(EPSILON_GRAPH)), DecodeConfig())
    assert dec.decode_batch([]) == []
    with pytest.raises(ValueError, match="the graph uses pdf 2 but the model has only 2 pdfs"):
        dec.decode_batch([np.zeros((4, 2), np.float32)])


@pytest.mark.parametrize("system", ["mono", "ensemble", "student_kd"])
def test_yesno_systems_decode_to_the_reference_paths(yesno_run, system, monkeypatch):
    rdir, _ = yesno_run
    assert decoders_agree(rdir, "test_yesno", system, monkeypatch) == 29
