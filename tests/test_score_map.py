"""Score maps (asr_kd.score.wer): tokens folded in references and hypotheses before scoring, as
TIMIT's 48 phones are scored on 39. The map goes dict dir -> lang dir (make-lang) -> graph dir
(make-graph; the TIMIT recipe test covers that hop and decoding with it) and the report says
it was used. Also L without optional silence (sil_prob 0), which the TIMIT recipe builds."""

from __future__ import annotations

import json
import re

import pytest

from asr_kd.lang.lang_dir import lexicon_fst_text, prepare_lang
from asr_kd.score.report import make_report
from asr_kd.score.wer import apply_score_map, compute_wer, read_score_map
from asr_kd.utils.runinfo import write_run


def test_read_and_apply(tmp_path):
    path = tmp_path / "score_map.txt"
    path.write_text("ix ih\nao aa\n\nvcl sil\nq\n")
    m = read_score_map(path)
    assert m == {"ix": "ih", "ao": "aa", "vcl": "sil", "q": None}
    texts = {"u1": "sil q ix ao b vcl".split(), "u2": []}
    assert apply_score_map(texts, m) == {"u1": "sil ih aa b sil".split(), "u2": []}
    # folded, the confusions inside a class are no errors; deleted tokens are not counted
    refs, hyps = {"u": "sil ix ao q b".split()}, {"u": "sil ih aa b".split()}
    assert compute_wer(refs, hyps).kaldi_line() == "%WER 60.00 [ 3 / 5, 0 ins, 1 del, 2 sub ]"
    folded = compute_wer(apply_score_map(refs, m), apply_score_map(hyps, m))
    assert folded.kaldi_line() == "%WER 0.00 [ 0 / 4, 0 ins, 0 del, 0 sub ]"


def test_malformed_map_names_file_and_line(tmp_path):
    path = tmp_path / "score_map.txt"
    path.write_text("ix ih\nao aa x\n")
    with pytest.raises(ValueError, match=re.escape(
            f"{path}:2: expected 'FROM TO' or 'FROM' (deleted), got 'ao aa x'")):
        read_score_map(path)
    path.write_text("ix ih\n\nix iy\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: 'ix' is mapped twice")):
        read_score_map(path)


def _dict_dir(path, score_map: str | None):
    path.mkdir(parents=True)
    (path / "lexicon.txt").write_text("sil sil\nix ix\nih ih\nb b\n")
    (path / "silence_phones.txt").write_text("sil\n")
    (path / "optional_silence.txt").write_text("sil\n")
    (path / "nonsilence_phones.txt").write_text("ix\nih\nb\n")
    if score_map is not None:
        (path / "score_map.txt").write_text(score_map)
    return path


def test_make_lang_carries_the_map(tmp_path):
    lang = prepare_lang(_dict_dir(tmp_path / "dict", "ix ih\n"), tmp_path / "lang")
    assert (lang.path / "score_map.txt").read_text() == "ix ih\n"
    # a dict dir without one: a map left from an earlier lang is removed
    prepare_lang(_dict_dir(tmp_path / "dict2", None), tmp_path / "lang", force=True)
    assert not (tmp_path / "lang" / "score_map.txt").exists()
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'dict3' / 'score_map.txt'}:1: expected 'FROM TO' or 'FROM'")):
        prepare_lang(_dict_dir(tmp_path / "dict3", "ix ih iy\n"), tmp_path / "lang3")


def test_lexicon_without_optional_silence():
    """sil_prob 0 (silence is a word, TIMIT's sil): L has no optional-silence arcs at all,
    rather than arcs of infinite cost; sil_prob 0.5 keeps both kinds."""
    prons = [(1, 1.0, [1]), (2, 1.0, [2, 3])]  # sil -> sil, "ab" -> 2 3
    text = lexicon_fst_text(prons, sil=1, sil_prob=0.0)
    assert "inf" not in text
    arcs = [ln.split() for ln in text.splitlines() if len(ln.split()) > 2]
    assert not [a for a in arcs if a[1] == "2"]  # nothing enters the silence state
    assert ["1", "1", "1", "1", "-0.0"] in arcs  # the word sil itself
    both = lexicon_fst_text(prons, sil=1, sil_prob=0.5)
    assert len([ln for ln in both.splitlines() if ln.split()[1:2] == ["2"]]) == 3


def test_report_says_what_was_scored(tmp_path):
    exp = tmp_path / "exp"
    detail = {"words": 4, "ins": 0, "dels": 0, "subs": 1, "errors": 1}
    for name, role, score_map in (("mono", "gmm", tmp_path / "exp/graph/score_map.txt"),
                                  ("teacher_1", "teacher", tmp_path / "exp/graph/score_map.txt")):
        d = exp / name / "decode_test"
        d.mkdir(parents=True)
        write_run(exp / name, role)
        (d / "scores.json").write_text(json.dumps({
            "wer": 25.0, "frame_acc": 50.0, "params": 10, "flops_per_frame": 20,
            "hyp": str(d / "hyp.txt"), "wer_detail": detail, "search_rtfx": 100.0,
            "kaldi_line": "%WER 25.00 [ 1 / 4, 0 ins, 0 del, 1 sub ]",
            "score_map": str(score_map)}))
    out = make_report(exp, "timit", "test", recipe_dir=tmp_path)
    assert out["results"]["systems"]["mono"]["score_map"] == "exp/graph/score_map.txt"
    assert ("Scored after mapping the tokens of references and hypotheses with "
            "`exp/graph/score_map.txt`.") in out["markdown"]
    (exp / "mono" / "decode_test" / "scores.json").write_text(json.dumps(
        {**json.loads((exp / "mono/decode_test/scores.json").read_text()), "score_map": None}))
    (exp / "teacher_1" / "decode_test" / "scores.json").unlink()
    out = make_report(exp, "timit", "test", recipe_dir=tmp_path)
    assert out["results"]["systems"]["mono"]["score_map"] is None
    assert "Scored after mapping" not in out["markdown"]
