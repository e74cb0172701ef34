"""The batched torch decoder against kaldi-decoder's FasterDecoder (the reference): small graphs
with epsilon arcs, batches of different lengths, dead ends, max-active and min-active, where the
reference's token order shows, capacity overflow, epsilon cycles, host syncs in the frame step,
and real yesno models."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from asr_kd.decode import DecodeConfig, DeviceGraph, ReferenceDecoder, TorchDecoder
from asr_kd.utils.fst import compile_text
from asr_kd.utils.sync_audit import SyncAudit
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


def _batch(lengths=(1, 2, 7, 30, 64, 3, 64, 15)):
    rng = np.random.default_rng(0)
    return [rng.normal(0, 3, size=(n, 3)).astype(np.float32) for n in lengths]


def _same(r, h):
    assert (r is None) == (h is None)
    if r is not None:
        assert h.words == r.words
        np.testing.assert_array_equal(h.pdf_alignment, r.pdf_alignment)
        assert h.cost == pytest.approx(r.cost, abs=1e-3)
        assert h.reached_final == r.reached_final


def test_epsilon_arcs_and_mixed_lengths_match_the_reference():
    mats = _batch()
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


# Three branches (words 1, 2, 3) at costs 1, 3, 5 after the first frame; the second frame makes
# word 3 the best path (5.1), then word 2 (6), then word 1 (11).
BRANCHES = "0 1 1 1 0\n0 2 2 2 0\n0 3 3 3 0\n1 4 4 0 0\n2 5 5 0 0\n3 6 6 0 0\n4 0\n5 0\n6 0\n"


def test_min_active_loosens_the_beam_as_kaldi_does():
    ll = np.full((2, 6), -50.0, np.float32)
    ll[0, :3] = [-1.0, -3.0, -5.0]
    ll[1, 3:] = [-10.0, -3.0, -0.1]
    # beam 1: min_active 0 keeps the best branch alone; 2: three tokens are more than two, so
    # the cutoff loosens to the third-best cost (5) and branches 1 and 2 go on; 3: at most
    # min_active tokens are not pruned at all (Kaldi's GetCutoff gives +inf).
    for min_active, words, cost in [(0, [1], 11.0), (2, [2], 6.0), (3, [3], 5.1)]:
        refs, ours = _both(BRANCHES, [ll], acoustic_scale=1.0, beam=1.0, min_active=min_active)
        _same(refs[0], ours[0])
        assert ours[0].words == words and ours[0].cost == pytest.approx(cost, abs=1e-5)


def test_max_active_binding_on_epsilon_paths_gives_the_reference_best_paths():
    """max_active 4 binds (3 of the 8 best paths lose words to it) and every best
    path is the reference's. Token sets are not compared, and with max_active 2 or 3 half of
    these best paths differ, because of FasterDecoder::ProcessEmitting's running
    next_weight_cutoff: it tightens as the candidates come, in the order of its hash list, so a
    candidate up to `adaptive beam` above the frame's best survives when it comes before the
    best (see the test below). The tokens this lets through count in the next frame's
    max_active cutoff and adaptive beam, so the reference's pruning depends on the order of its
    tokens (and, beyond its hash size, on the sizes it had before). Ours prunes with the
    cutoff's final value, best + adaptive beam, as if the best came first: on random graphs
    that equals a Python replica of FasterDecoder with that one change on every utterance."""
    mats = _batch()
    refs, ours = _both(EPSILON_GRAPH, mats, acoustic_scale=1.0, beam=30.0, max_active=4,
                       min_active=1)
    _, wide = _both(EPSILON_GRAPH, mats, acoustic_scale=1.0, beam=30.0)  # 6 states: no pruning
    for r, h in zip(refs, ours, strict=True):
        _same(r, h)
    assert sum(h.words != w.words and h.cost > w.cost for h, w in zip(ours, wide)) == 3


# Tokens at states 1 (cost 0) and 2 (cost 1) after the first frame; in the second, state 1's
# arc to the final state 3 costs 10 more, state 2's arc to the non-final state 4 one more.
RUNNING_CUTOFF = "0 {} 1 0 0\n0 {} 2 0 0\n1 3 3 1 0\n2 4 4 2 0\n3 0\n"


@pytest.mark.parametrize("state_1_first", [True, False])
def test_the_reference_keeps_what_its_running_cutoff_let_through(state_1_first):
    """Beam 4: the second frame's cutoff is 2 + 4, so state 3 (cost 10) is pruned. The
    reference starts from its best token's arcs (10 + 4) and tightens the cutoff as it goes:
    when state 1 comes first in its list, state 3 gets through, reaches the final state and
    wins; ours never keeps it."""
    arcs = (1, 2) if state_1_first else (2, 1)  # the list is in order of first insertion
    graph = RUNNING_CUTOFF.format(*arcs)
    ll = np.array([[0.0, -1.0, -50.0, -50.0], [-50.0, -50.0, -10.0, -1.0]], np.float32)
    if not state_1_first:  # the pdfs follow the arcs
        ll = ll[:, [1, 0, 3, 2]]
        graph = graph.replace("1 3 3 1", "1 3 4 1").replace("2 4 4 2", "2 4 3 2")
    refs, ours = _both(graph, [ll], acoustic_scale=1.0, beam=4.0, min_active=0)
    assert not ours[0].reached_final and ours[0].words == [2]
    if state_1_first:
        assert refs[0].reached_final and refs[0].words == [1] and refs[0].cost == 10.0
    else:
        _same(refs[0], ours[0])


def test_overflowing_capacity_decodes_the_batch_again_with_more(caplog):
    mats = _batch()
    fst = compile_text(EPSILON_GRAPH)
    cfg = DecodeConfig(acoustic_scale=1.0, beam=30.0)
    dec = TorchDecoder(DeviceGraph(fst, name="EPSILON_GRAPH"), cfg, capacity=1)
    with caplog.at_level(logging.INFO, logger="asr_kd.decode.torch_decoder"):
        ours = dec.decode_batch(mats)
    assert "torch decoder on EPSILON_GRAPH: token slots overflowed" in caplog.text
    assert dec.capacity.tokens > 1
    for r, h in zip(ReferenceDecoder(fst, cfg).decode_batch(mats), ours, strict=True):
        _same(r, h)


def test_the_device_graph_keeps_weights_as_stored():
    """OpenFst's text printer keeps 6 digits (0.123457): on yesno's HCLG that moved tokens
    across the float32 max-active cutoff, which the reference takes from the stored weights."""
    fst = compile_text("0 1 1 2 0.123456789\n1 1 1 0 1.00000012\n1 0.987654321\n")
    g = DeviceGraph(fst)
    assert g.emitting.weight.tolist() == [float(np.float32(0.123456789)),
                                          float(np.float32(1.00000012))]
    assert g.final[1] == np.float32(0.987654321)


def test_epsilon_cycles_are_refused_naming_the_graph():
    graph = "0 1 1 0 0\n1 2 0 0 0.5\n2 3 0 7 0.5\n3 1 0 0 0.5\n3 0\n"
    with pytest.raises(ValueError, match=r"^loop\.fst: its input-epsilon arcs form a cycle "
                                         r"\(1 -> 2 -> 3 -> 1\)"):
        DeviceGraph(compile_text(graph), name="loop.fst")
    assert DeviceGraph(compile_text(EPSILON_GRAPH)).epsilon_depth == 3  # 1 -> 3 -> 4 -> 0


@pytest.mark.parametrize("cfg", [dict(beam=30.0), dict(beam=30.0, max_active=3, min_active=2)])
def test_the_frame_step_reads_nothing_back_from_the_device(cfg):
    # 4 token slots of the graph's 6: the batch of eight overflows them once (and grows them)
    dec = TorchDecoder(DeviceGraph(compile_text(EPSILON_GRAPH)),
                       DecodeConfig(acoustic_scale=1.0, **cfg), capacity=4)
    for mats in ([np.zeros((5, 3), np.float32)], _batch()):  # one utterance, and eight
        before = dec.capacity
        with SyncAudit() as audit:
            dec.decode_batch(mats)
        print("decoder frame:", audit.inside("decoder frame"), "outside:", audit.outside(),
              "capacity:", before, "->", dec.capacity)
        assert audit.inside("decoder frame") == {}
        # once per try: the overflow flags; once per batch: four copies for the traceback
        tries = 1 + (dec.capacity != before)
        assert audit.outside() == {"Tensor.cpu": 4, "Tensor.numpy": 4, "Tensor.tolist": tries}
    assert dec.capacity.tokens == 6


def test_bad_input_is_refused_with_a_clear_message():
    dec = TorchDecoder(DeviceGraph(compile_text(EPSILON_GRAPH)), DecodeConfig())
    assert dec.decode_batch([]) == []
    with pytest.raises(ValueError, match="the graph uses pdf 2 but the model has only 2 pdfs"):
        dec.decode_batch([np.zeros((4, 2), np.float32)])


@pytest.mark.parametrize("system", ["mono", "ensemble", "student_kd"])
def test_yesno_systems_decode_to_the_reference_paths(yesno_run, system):
    rdir, _ = yesno_run
    assert decoders_agree(rdir, "test_yesno", system) == 29


def test_auto_is_torch_on_a_gpu_and_the_reference_on_the_cpu():
    from asr_kd.cli import build_parser
    from asr_kd.decode import decode_marker, decoder_names, make_decoder, resolve_decoder

    assert decoder_names() == ["auto", "reference", "torch"]
    assert resolve_decoder("auto", "cpu") == "reference"
    assert resolve_decoder("auto", torch.device("cuda", 1)) == "torch"
    assert resolve_decoder("torch", "cpu") == "torch"
    assert isinstance(make_decoder("auto", compile_text(EPSILON_GRAPH), DecodeConfig()),
                      ReferenceDecoder)
    # a decode dir's marker names the decoder that ran: auto on the CPU is done by the reference
    assert decode_marker("auto", "cpu") == decode_marker("reference") == "done_reference"
    args = build_parser().parse_args(["decode", "--system", "s", "m", "g", "d", "o"])
    assert args.decoder == "auto"
