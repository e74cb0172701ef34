"""asr_kd.lang.ngram: modified Kneser-Ney values by hand, normalisation through ARPA, kaldilm."""

from __future__ import annotations

import math
import re

import kaldilm
import pytest

from asr_kd.lang import prepare_lang
from asr_kd.lang.ngram import BOS, EOS, FALLBACK, estimate_discounts, train_kneser_ney
from asr_kd.utils.io import write_lines
from tests.conftest import corpus


def parse_arpa(text: str) -> tuple[dict, dict]:
    """(log10 prob, log10 bow) per n-gram tuple, read back the way an ARPA consumer does."""
    logp, bow, order = {}, {}, 0
    for line in text.splitlines():
        if m := re.match(r"\\(\d+)-grams:$", line):
            order = int(m[1])
        elif order and line and not line.startswith("\\"):
            f = line.split("\t")
            g = tuple(f[1].split())
            assert len(g) == order, line
            logp[g] = float(f[0])
            if len(f) == 3:
                bow[g] = float(f[2])
    return logp, bow


def arpa_prob(logp, bow, word, hist) -> float:
    """P(word | hist) by ARPA backoff semantics, independent of NgramLM.logprob."""
    if hist + (word,) in logp:
        return 10 ** logp[hist + (word,)]
    return 10 ** bow.get(hist, 0.0) * arpa_prob(logp, bow, word, hist[1:])


def an4_sentences(split: str) -> list[list[str]]:
    path = corpus("an4") / "etc" / f"an4_{split}.transcription"
    return [[w for w in line[: line.rindex("(")].split() if w not in (BOS, EOS)]
            for line in path.read_text().splitlines()]


def an4_words() -> list[str]:
    lines = (corpus("an4") / "etc" / "an4.dic").read_text().splitlines()
    return sorted({re.sub(r"\(\d+\)$", "", ln.split()[0]) for ln in lines if ln.strip()})


def test_discounts_and_probabilities_by_hand():
    # Unigram model: raw counts a=1 b=2 c=3 d=4 </s>=4, so n1=n2=n3=1, n4=2, Y=1/3:
    # D1 = 1 - 2Y n2/n1 = 1/3, D2 = 2 - 3Y n3/n2 = 1, D3+ = 3 - 4Y n4/n3 = 1/3.
    lm = train_kneser_ney([["a"], ["b", "b"], ["c", "c", "c"], ["d"] * 4], order=1, vocab=["e"])
    assert lm.discounts[0] == pytest.approx((1 / 3, 1.0, 1 / 3))
    # gamma = (D1*1 + D2*1 + D3+*3) / 14 = 1/6, spread uniformly over 6 words (a-e, </s>).
    assert 10 ** lm.logprob("a") == pytest.approx((1 - 1 / 3) / 14 + 1 / 36)
    assert 10 ** lm.logprob("d") == pytest.approx((4 - 1 / 3) / 14 + 1 / 36)
    assert 10 ** lm.logprob("e") == pytest.approx(1 / 36)  # vocabulary only: uniform share
    assert lm.logprob("zzz") == -math.inf
    assert lm.vocab == ["</s>", "a", "b", "c", "d", "e"]

    # Bigram: continuation counts for unigrams (b follows a and c -> 2), and zero
    # counts-of-counts -> fallback discounts.
    lm = train_kneser_ney([["a", "b"], ["a", "b"], ["c", "b"]], order=2)
    assert lm.discounts == [FALLBACK, FALLBACK]
    # unigram: total 5, gamma = (0.5*3 + 1.0*1)/5 = 0.5, 4 words -> p(b) = 1/5 + 0.5/4
    assert 10 ** lm.logprob("b") == pytest.approx(0.325)
    assert 10 ** lm.logprob("a") == pytest.approx(0.225)
    # p(b|a) = (2 - D2)/2 + gamma(a) p(b), gamma(a) = D2*1/2; a longer history is truncated
    assert 10 ** lm.logprob("b", ["c", "a"]) == pytest.approx(0.5 + 0.5 * 0.325)
    assert 10 ** lm.logprob("a", ["b"]) == pytest.approx(10 ** lm.bow[("b",)] * 0.225)


def test_estimate_discounts():
    # Y = 10/20: D2 = 2 - 3 * 0.5 * 3/5, D3+ = 3 - 4 * 0.5 * 2/3
    assert estimate_discounts({1: 10, 2: 5, 3: 3, 4: 2}) == pytest.approx((0.5, 1.1, 5 / 3))
    assert estimate_discounts({1: 3, 2: 1}) == FALLBACK  # n3 = n4 = 0
    assert estimate_discounts({1: 1, 2: 1, 3: 1, 4: 9}) == FALLBACK  # D3+ would be < 0


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_arpa_normalises_for_every_history(order):
    vocab = an4_words()
    lm = train_kneser_ney(an4_sentences("train"), order=order, vocab=vocab)
    arpa = lm.to_arpa()
    logp, bow = parse_arpa(arpa)
    assert f"ngram {order}=" in arpa and arpa.endswith("\\end\\\n")
    assert logp[(BOS,)] == -99 and "<unk>" not in arpa
    predicted = vocab + [EOS]
    assert sorted(lm.vocab) == sorted(predicted)
    histories = [()] + [g for g in logp if len(g) < order and g[-1] != EOS]
    assert len(histories) > 1 or order == 1
    for h in histories:
        total = sum(arpa_prob(logp, bow, w, h) for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-6), h
    # NgramLM.logprob agrees with the ARPA it wrote.
    for h in histories[:50]:
        for w in ("A", "NOVEMBER", EOS):
            assert 10 ** lm.logprob(w, h) == pytest.approx(arpa_prob(logp, bow, w, h), rel=1e-5)


def test_an4_perplexity_falls_with_order():
    vocab, train, test = an4_words(), an4_sentences("train"), an4_sentences("test")
    ppl = [train_kneser_ney(train, order=n, vocab=vocab).perplexity(test) for n in (1, 2, 3)]
    assert all(math.isfinite(p) for p in ppl)  # NOVEMBER, THIRTEEN are test-only words
    assert ppl[2] < ppl[0] and ppl[1] < ppl[0]
    assert ppl[0] < len(vocab) + 1  # better than uniform


def test_kaldilm_and_prepare_lang_accept_it(tmp_path):
    lm = train_kneser_ney(an4_sentences("train"), order=3, vocab=an4_words())
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(lm.to_arpa())
    dict_dir = tmp_path / "dict"
    lex = []
    for ln in (corpus("an4") / "etc" / "an4.dic").read_text().splitlines():
        if ln.strip():
            w, *ph = ln.split()
            lex.append(" ".join([re.sub(r"\(\d+\)$", "", w), *ph]))
    write_lines(dict_dir / "lexicon.txt", ["<SIL> SIL", *lex])
    phones = (corpus("an4") / "etc" / "an4.phone").read_text().split()
    write_lines(dict_dir / "nonsilence_phones.txt", [p for p in phones if p != "SIL"])
    write_lines(dict_dir / "silence_phones.txt", ["SIL"])
    write_lines(dict_dir / "optional_silence.txt", ["SIL"])
    write_lines(dict_dir / "extra_questions.txt", [])
    lang = prepare_lang(dict_dir, tmp_path / "lang", arpa=str(arpa))
    G = lang.G()
    assert G.num_states > len(lm.logp[1])  # one state per bigram history, at least

    words = tmp_path / "lang" / "words.txt"
    text = kaldilm.arpa2fst(input_arpa=str(arpa), disambig_symbol="#0",
                            read_symbol_table=str(words))
    backoff = [ln for ln in text.splitlines() if len(ln.split()) == 5 and ln.split()[2] ==
               str(lang.words["#0"])]
    assert len(backoff) == len(lm.bow)  # one #0 backoff arc per context with a bow
