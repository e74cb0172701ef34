"""Small pieces checked against hand computations and oracles: WER counting (also on the yesno
recipe's real hypotheses), configs, GMMs, lexicon disambiguation, the model registry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.lang.dictionary import add_disambig
from asr_kd.score.wer import compute_wer
from asr_kd.utils.config import from_dict


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance, the textbook dynamic programme (no jiwer)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1]


def _check_wer_against_oracles(refs: dict[str, list[str]], hyps: dict[str, list[str]]):
    """compute_wer(refs, hyps) against jiwer over the whole set at once (a missing hypothesis
    given to it as empty) and against the hand-coded edit distance; returns the result."""
    r = compute_wer(refs, hyps)
    utts = sorted(refs)
    ref_s = [" ".join(refs[u]) for u in utts]
    hyp_s = [" ".join(hyps.get(u, [])) for u in utts]
    out = jiwer.process_words(ref_s, hyp_s)
    assert (r.ins, r.dels, r.subs) == (out.insertions, out.deletions, out.substitutions)
    assert r.words == out.hits + out.substitutions + out.deletions == sum(map(len, refs.values()))
    assert r.errors == sum(_edit_distance(refs[u], hyps.get(u, [])) for u in utts)
    assert math.isclose(r.wer, 100 * jiwer.wer(ref_s, hyp_s))
    assert r.sentences == len(utts)
    assert r.sentence_errors == sum(refs[u] != hyps.get(u, []) for u in utts)
    assert r.per_utt == {u: _edit_distance(refs[u], hyps.get(u, [])) for u in utts}
    return r


def test_wer_counts_and_kaldi_line():
    refs = {"a": "YES NO YES".split(), "b": "NO NO".split(), "c": "YES".split()}
    hyps = {"a": "YES YES".split(), "b": "NO NO NO".split()}  # c missing: all deleted
    r = _check_wer_against_oracles(refs, hyps)
    assert (r.words, r.ins, r.dels, r.subs) == (6, 1, 2, 0)
    assert r.kaldi_line() == "%WER 50.00 [ 3 / 6, 1 ins, 2 del, 0 sub ]"
    assert r.ser_line() == "%SER 100.00 [ 3 / 3 ]"
    r = _check_wer_against_oracles(refs, {"a": "NO NO YES".split(), "b": [], "c": ["NO"]})
    assert (r.ins, r.dels, r.subs) == (0, 2, 2)


def _read_texts(path: Path) -> dict[str, list[str]]:
    """Kaldi's `utt word ...` lines (text, hyp.txt); a line with the id alone is empty."""
    return {f[0]: f[1:] for f in (ln.split() for ln in path.read_text().splitlines()) if f}


def _edited(hyps: dict[str, list[str]]) -> dict[str, list[str]]:
    """A real hypothesis set with words edited, the same way every time: by the utterance's
    place in sorted order, its second word flipped (YES <-> NO), its first two deleted, its
    last replaced by a word outside the vocabulary and one prepended, or the utterance left
    out altogether (all deleted); every fifth is left as it was."""
    flip = {"YES": "NO", "NO": "YES"}
    out = {}
    for k, u in enumerate(sorted(hyps)):
        ws = list(hyps[u])
        if k % 5 == 0 and len(ws) > 1:
            ws[1] = flip.get(ws[1], "YES")
        elif k % 5 == 1:
            ws = ws[2:]
        elif k % 5 == 2 and ws:
            ws = ["NO"] + ws[:-1] + ["MAYBE"]
        elif k % 5 == 3:
            continue
        out[u] = ws
    return out


def test_wer_on_the_yesno_recipes_hypotheses(yesno_run):
    """Every system's hyp.txt from a real yesno run, as it is and with words edited (the run's
    own errors are all insertions), scored against data/test_yesno/text."""
    rdir, _ = yesno_run
    refs = _read_texts(rdir / "data/test_yesno/text")
    assert len(refs) == 29 and sum(map(len, refs.values())) == 232
    decodes = sorted(rdir.glob("exp/*/decode_test_yesno"))
    assert len(decodes) == 7  # mono, 3 teachers, ensemble, 2 students
    for d in decodes:
        hyps = _read_texts(d / "hyp.txt")
        assert set(hyps) == set(refs), d
        r = _check_wer_against_oracles(refs, hyps)
        assert (d / "wer").read_text().splitlines() == [r.kaldi_line(), r.ser_line()], d
        e = _check_wer_against_oracles(refs, _edited(hyps))
        assert e.ins > 0 and e.dels > 0 and e.subs > 0, (d, e.kaldi_line())


@dataclass
class _Inner:
    x: int = 1


@dataclass
class _Outer:
    a: float = 0.5
    inner: _Inner = field(default_factory=_Inner)


def test_config_unknown_key_is_named():
    cfg = from_dict(_Outer, {"a": 2.0, "inner": {"x": 3}}, "conf/x.yaml")
    assert cfg == _Outer(2.0, _Inner(3))
    with pytest.raises(ValueError) as e:
        from_dict(_Outer, {"inner": {"y": 3}}, "conf/x.yaml")
    assert str(e.value) == "conf/x.yaml.inner: unknown key 'y' for _Inner (known: x)"


def test_lexicon_disambiguation_like_kaldi():
    lex = [("A", 1.0, ["a"]), ("AB", 1.0, ["a", "b"]), ("C", 1.0, ["c"]), ("C2", 1.0, ["c"])]
    prons, max_dis = add_disambig(lex)
    # "a" is a prefix of "a b"; "c" is shared by two words: each gets its own #n.
    assert prons == [["a", "#1"], ["a", "b"], ["c", "#1"], ["c", "#2"]]
    assert max_dis == 2


def test_gmm_log_likelihood_matches_formula_and_em_climbs():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(500, 3)).astype(np.float32))
    means = torch.tensor([[[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]]])
    var = torch.tensor([[[1.0, 2.0, 0.5], [0.5, 1.0, 1.5]]])
    logw = torch.log(torch.tensor([[0.3, 0.7]]))
    g = DiagGmm(means, var, logw)
    direct = torch.logsumexp(torch.stack([
        logw[0, m] - 0.5 * (torch.log(2 * math.pi * var[0, m]) +
                            (x - means[0, m]) ** 2 / var[0, m]).sum(-1) for m in range(2)]), 0)
    assert torch.allclose(g.log_likelihoods(x)[:, 0], direct, atol=1e-4)
    # EM never lowers the likelihood of the data it is fitted to.
    pdf = torch.zeros(len(x), dtype=torch.long)
    prev = -math.inf
    for _ in range(5):
        occ, sx, sxx, ll = g.accumulate(x, pdf)
        assert ll >= prev - 1e-3
        prev = ll
        g.update(occ, sx, sxx, min_gauss_occ=1.0)
