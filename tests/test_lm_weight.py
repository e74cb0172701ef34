"""The LM weight and word insertion penalty grid (asr_kd.decode.lm_weight), as Kaldi's score.sh:
the penalty checked against a hand computation on a small graph, the grid on the yesno
recipe's real audio, and a dev set's choice carried to another decode."""

import json

import kaldifst
import numpy as np
import pytest

from asr_kd.cli import main
from asr_kd.decode.lm_weight import (
    LmPoint,
    add_word_penalty,
    choose,
    lm_grid,
    parse_lm_weights,
    read_choice,
)
from asr_kd.utils.fst import compile_text, to_arrays

# Two paths from state 0 to the final state 1: one word at cost 1.0, or two words at 0.3 + 0.2
# with a word-less arc of 0.1 between them (0.6 in all).
TWO_PATHS = """0 1 1 1 1.0
0 2 1 2 0.3
2 3 2 0 0.1
3 1 3 3 0.2
1 0
"""


def best_words(fst) -> list[int]:
    ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(fst))
    assert ok
    return [w for w in olabels if w]


def test_the_penalty_is_added_once_per_word_and_can_flip_the_best_path():
    fst = compile_text(TWO_PATHS)
    assert best_words(fst) == [2, 3]  # 0.6 against 1.0
    assert best_words(add_word_penalty(fst, 0.3)) == [2, 3]  # 1.2 against 1.3
    assert best_words(add_word_penalty(fst, 0.5)) == [1]  # 1.6 against 1.5
    a, b = to_arrays(fst), to_arrays(add_word_penalty(fst, 0.5))
    np.testing.assert_allclose(b.weight - a.weight, 0.5 * (a.olabel != 0), atol=1e-6)
    np.testing.assert_array_equal(b.final, a.final)
    assert add_word_penalty(fst, 0.0) is fst


def test_grid_names_and_choice():
    assert parse_lm_weights("7:17") == [float(w) for w in range(7, 18)]
    assert parse_lm_weights("8, 12.5") == [8.0, 12.5]
    for bad in ("7-17", "0:3", ""):
        with pytest.raises(ValueError, match="--lm-weights"):
            parse_lm_weights(bad)
    grid = lm_grid(parse_lm_weights("7:17"), (0.0, 0.5, 1.0))
    assert len(grid) == 33 and grid[0].name == "7_0" and grid[-1].name == "17_1"
    fixed = LmPoint.of_scale(0.1)
    assert fixed == LmPoint(10.0, 0.0) and fixed in grid
    flat = {pt: 5.0 for pt in grid}
    assert choose(flat, grid, fixed) == fixed  # a tie keeps the fixed weight
    flat[LmPoint(12.0, 0.5)] = flat[LmPoint(8.0, 1.0)] = 4.0
    assert choose(flat, grid, fixed) == LmPoint(12.0, 0.5)  # equally near 10: smaller penalty


def decode(*args):
    return main(["decode", "--system", "mono", "exp/mono/final.mdl", "exp/graph",
                 "data/test_yesno", *args, "--config", "conf/decode_gmm.yaml",
                 "--ali-dir", "exp/mono_ali_test_yesno", "--device", "cpu"])


def test_yesno_grid_and_its_choice_carried_to_another_decode(yesno_run, monkeypatch, capsys):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    dev, out = rdir / "exp/mono/decode_lm_grid", rdir / "exp/mono/decode_lm_from"
    assert decode(str(dev), "--lm-weights", "1,10,1000", "--word-ins-penalties", "0", "20") == 0
    grid = json.loads((dev / "scores.json").read_text())["lm_tuning"]
    assert sorted(p.name[4:] for p in dev.glob("wer_*_*")) == sorted(grid["grid"])
    assert len(grid["grid"]) == 6
    # Kaldi's %WER line of every point; at weight 1000 and penalty 20 the LM's costs swamp the
    # acoustics and each word costs more than leaving it out: every word is deleted
    assert (dev / "wer_1000_20").read_text() == "%WER 100.00 [ 232 / 232, 0 ins, 232 del, 0 sub ]\n"
    assert grid["wer_fixed"] == grid["grid"]["10_0"]
    chosen = LmPoint(grid["chosen"]["lm_weight"], grid["chosen"]["word_ins_penalty"])
    assert grid["grid"][chosen.name] == min(grid["grid"].values())
    assert read_choice(dev) == (chosen, "data/test_yesno")
    capsys.readouterr()
    assert decode(str(out), "--lm-weight-from", str(dev)) == 0
    printed = capsys.readouterr().out
    assert f"at LM weight {chosen.lm_weight:g}, penalty {chosen.penalty:g}" in printed
    scores = json.loads((out / "scores.json").read_text())
    # a search of its own at the chosen point finds what the grid's found there
    assert scores["wer"] == grid["grid"][chosen.name]
    assert scores["lm_tuning"]["wer_fixed"] == grid["wer_fixed"]
    assert scores["lm_tuning"]["chosen_on"] == "data/test_yesno"  # where the dev decode chose
    assert scores["lm_tuning"]["grid"] is None
    assert (out / "hyp.txt").read_text() == (dev / "hyp.txt").read_text()
    assert not list(out.glob("wer_*_*"))


def test_lm_weight_options_are_checked(yesno_run, monkeypatch, capsys):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    assert decode("exp/mono/decode_x", "--lm-weights", "7:17", "--lm-weight-from", "exp") == 1
    assert "give one of them" in capsys.readouterr().err
    plain = rdir / "exp/mono/decode_test_yesno"
    assert decode("exp/mono/decode_y", "--lm-weight-from", str(plain)) == 1
    assert (f"asr-kd decode: error: {plain}/scores.json: this decode chose no LM weight "
            "(decode the dev set with --lm-weights)") in capsys.readouterr().err
    assert not (rdir / "exp/mono/decode_y/scores.json").exists()
