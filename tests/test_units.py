"""Small pieces checked against hand computations and oracles: WER counting, configs, GMMs,
lexicon disambiguation, the model registry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jiwer
import numpy as np
import pytest
import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.lang.dictionary import add_disambig
from asr_kd.score.wer import compute_wer
from asr_kd.utils.config import from_dict


def test_wer_counts_and_kaldi_line():
    refs = {"a": "YES NO YES".split(), "b": "NO NO".split(), "c": "YES".split()}
    hyps = {"a": "YES YES".split(), "b": "NO NO NO".split()}  # c missing: all deleted
    r = compute_wer(refs, hyps)
    assert (r.words, r.ins, r.dels, r.subs) == (6, 1, 2, 0)
    assert r.kaldi_line() == "%WER 50.00 [ 3 / 6, 1 ins, 2 del, 0 sub ]"
    assert r.ser_line() == "%SER 100.00 [ 3 / 3 ]"
    ref_all = jiwer.wer(["YES NO YES", "NO NO"], ["YES YES", "NO NO NO"])
    assert math.isclose(ref_all, 2 / 5)


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
