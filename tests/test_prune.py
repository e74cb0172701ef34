"""asr_kd.lang.prune and ARPA reading: Stolcke's criterion recomputed here by brute force on a
hand-built trigram LM, normalisation by enumeration, ARPA round trips and errors, the CLI verb,
and a slice of the real lm_en_us trigram."""

from __future__ import annotations

import gzip
import math
import random

import pytest

from asr_kd.cli import main
from asr_kd.lang.ngram import BOS, EOS, read_arpa, train_kneser_ney, write_arpa
from asr_kd.lang.prune import prune_lm, restrict_vocab
from tests.conftest import corpus

# The hand-built model: probabilities chosen here, backoff weights computed from them below.
P1 = {"</s>": 0.2, "a": 0.3, "b": 0.3, "c": 0.2}
P2 = {("<s>", "a"): 0.5, ("<s>", "b"): 0.3, ("a", "b"): 0.6, ("a", "c"): 0.2,
      ("b", "a"): 0.4, ("b", "</s>"): 0.3, ("c", "</s>"): 0.5, ("c", "a"): 0.25}
P3 = {("<s>", "a", "b"): 0.7, ("<s>", "a", "c"): 0.1, ("a", "b", "a"): 0.5,
      ("a", "b", "</s>"): 0.3, ("b", "a", "c"): 0.5}
WORDS = sorted(P1)  # the words a model predicts (<s> only starts histories)


def lg(p: float) -> float:
    """log10 p as an ARPA file holds it (7 decimals)."""
    return float(f"{math.log10(p):.7f}")


def prob(logp: dict, bow: dict, w: str, h: tuple) -> float:
    """P(w | h) by ARPA backoff, written out again here (not NgramLM.logprob)."""
    if h + (w,) in logp:
        return 10 ** logp[h + (w,)]
    return 10 ** bow.get(h, 0.0) * prob(logp, bow, w, h[1:])


def consistent_bows(logp: dict) -> dict:
    """bow(h) = (1 - sum_explicit P(w|h)) / (1 - sum_explicit P(w|h')), lower orders first."""
    bow: dict = {}
    for h in sorted({g[:-1] for g in logp if len(g) > 1}, key=len):
        ws = [g[-1] for g in logp if g[:-1] == h]
        num = 1 - sum(10 ** logp[h + (w,)] for w in ws)
        den = 1 - sum(prob(logp, bow, w, h[1:]) for w in ws)
        bow[h] = lg(num / den)
    return bow


def tiny() -> tuple[dict, dict]:
    logp = {(BOS,): -99.0} | {(w,): lg(p) for w, p in P1.items()}
    logp |= {g: lg(p) for g, p in (P2 | P3).items()}
    return logp, consistent_bows(logp)


def arpa_text(logp: dict, bow: dict) -> str:
    order = max(map(len, logp))
    out = ["\\data\\"] + [f"ngram {n}={sum(len(g) == n for g in logp)}"
                          for n in range(1, order + 1)]
    for n in range(1, order + 1):
        out += ["", f"\\{n}-grams:"]
        out += [f"{logp[g]:.7f}\t{' '.join(g)}" + (f"\t{bow[g]:.7f}" if g in bow else "")
                for g in sorted(g for g in logp if len(g) == n)]
    return "\n".join(out + ["", "\\end\\", ""])


def perplexity_increase(logp: dict, bow: dict, g: tuple) -> float:
    """exp(D) - 1 for removing g alone, D = P(h) KL(P(.|h) || P'(.|h)) by enumerating the
    words, P' being the model without g and with bow(h) renormalised; P(h) by the chain
    rule, a leading <s> counted with P(</s>)."""
    h, w = g[:-1], g[-1]
    rest = [v for v in WORDS if h + (v,) in logp and v != w]
    num = 1 - sum(10 ** logp[h + (v,)] for v in rest)
    den = 1 - sum(prob(logp, bow, v, h[1:]) for v in rest)
    logp2 = {k: v for k, v in logp.items() if k != g}
    bow2 = bow | {h: math.log10(num / den)}
    kl = sum(prob(logp, bow, v, h) * math.log(prob(logp, bow, v, h) / prob(logp2, bow2, v, h))
             for v in WORDS)
    p_h = prob(logp, bow, EOS if h[0] == BOS else h[0], ())
    for i in range(1, len(h)):
        p_h *= prob(logp, bow, h[i], h[:i])
    return math.expm1(p_h * kl)


def brute_force_pruned(logp: dict, bow: dict, threshold: float) -> set:
    """SRILM's rule on the values above: trigrams first; a bigram stays while it is the
    context of a trigram that stays."""
    cost = {g: perplexity_increase(logp, bow, g) for g in logp if len(g) > 1}
    gone = {g for g in cost if len(g) == 3 and cost[g] < threshold}
    needed = {g[:2] for g in logp if len(g) == 3 and g not in gone}
    return gone | {g for g in cost if len(g) == 2 and cost[g] < threshold and g not in needed}


def write_tiny(tmp_path) -> tuple:
    logp, bow = tiny()
    path = tmp_path / "tiny.arpa"
    path.write_text(arpa_text(logp, bow))
    return path, logp, bow


def sums_to_one(lm) -> None:
    """Every history the model can be in (each n-gram below the top order, plus the empty one
    and histories it never saw) predicts a distribution that sums to 1 (to 1e-6: unigrams read
    from a file, with 7 decimals, sum to 1 within that)."""
    words = [g[0] for g in lm.logp[0] if g[0] != BOS]
    histories = [()] + [g for t in lm.logp[:-1] for g in t] + [(w, BOS) for w in words[:3]]
    for h in histories:
        assert sum(10 ** lm.logprob(w, h) for w in words) == pytest.approx(1, abs=1e-6), h


def test_costs_by_brute_force_and_what_prunes(tmp_path):
    path, logp, bow = write_tiny(tmp_path)
    cost = {g: perplexity_increase(logp, bow, g) for g in logp if len(g) > 1}
    # The relative perplexity increases, by enumeration as above (printed once, kept here):
    assert cost == pytest.approx({
        ("<s>", "a", "b"): 0.0001901, ("<s>", "a", "c"): 0.0017004,
        ("a", "b", "</s>"): 0.0018138, ("c", "a"): 0.0032321, ("a", "b", "a"): 0.0055012,
        ("<s>", "b"): 0.0059389, ("a", "c"): 0.0122509, ("b", "a"): 0.0167275,
        ("b", "</s>"): 0.0184325, ("<s>", "a"): 0.0236316, ("b", "a", "c"): 0.0271390,
        ("c", "</s>"): 0.0477267, ("a", "b"): 0.0722820}, rel=1e-4)
    lm = read_arpa(path)
    # At 0.025 all trigrams but b a c go; then <s> a (0.0236) goes as well, its trigrams gone,
    # while b a (0.0167) stays: b a c is still there.
    pruned, stats = prune_lm(lm, 0.025)
    gone = {g for t in lm.logp for g in t} - {g for t in pruned.logp for g in t}
    assert gone == {("<s>", "a", "b"), ("<s>", "a", "c"), ("a", "b", "</s>"), ("a", "b", "a"),
                    ("c", "a"), ("<s>", "b"), ("a", "c"), ("b", "</s>"), ("<s>", "a")}
    assert stats.before == [5, 8, 5] and stats.after == [5, 3, 1]
    assert pruned.bow.keys() == {("a",), ("b",), ("c",), ("b", "a")}  # <s> lost its bigrams
    # Every threshold between two neighbouring costs prunes what the rule says.
    edges = sorted(set(cost.values()))
    for lo, hi in zip([0.0, *edges], [*edges, 1.0]):
        t = math.sqrt(lo * hi) if lo else hi / 2
        pruned, _ = prune_lm(lm, t)
        gone = {g for tab in lm.logp for g in tab} - {g for tab in pruned.logp for g in tab}
        assert gone == brute_force_pruned(logp, bow, t), t
        sums_to_one(pruned)


def test_pruned_and_sliced_models_sum_to_one(tmp_path):
    path, _, _ = write_tiny(tmp_path)
    tiny_lm = read_arpa(path)
    sums_to_one(tiny_lm)
    sums_to_one(restrict_vocab(tiny_lm, ["a", "b"]))
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(12)]
    sentences = [[rng.choice(vocab[: rng.randint(2, 12)]) for _ in range(rng.randint(1, 9))]
                 for _ in range(400)]
    lm = train_kneser_ney(sentences, order=3)
    sums_to_one(lm)
    sizes = []
    for t in (1e-5, 1e-4, 1e-3, 1e-2):
        pruned, stats = prune_lm(lm, t)
        assert stats.after == pruned.counts() and stats.before == lm.counts()
        sums_to_one(pruned)
        sizes.append(sum(pruned.counts()))
    assert sizes == sorted(sizes, reverse=True) and sizes[0] < sum(lm.counts())
    sliced = restrict_vocab(lm, vocab[:5] + ["not-a-word"])
    assert [g[0] for g in sliced.logp[0]] == sorted([BOS, EOS, *vocab[:5]])
    sums_to_one(sliced)
    # Explicit probabilities are kept, but for unigrams (rescaled) and contexts followed by
    # every word of the slice: the order below leaves their unlisted words no mass, so their
    # n-grams are scaled to sum to 1 (SRILM's computeBOW).
    followers = {}
    for g in sliced.logp[2]:
        followers[g[:2]] = followers.get(g[:2], 0) + 1
    full = {h for h, k in followers.items() if k == len(vocab[:5]) + 1}
    assert full and len(full) < len(followers)
    for g, lp in sliced.logp[2].items():
        assert (lp == lm.logp[2][g]) == (g[:2] not in full), g
    sums_to_one(prune_lm(sliced, 1e-3)[0])


def test_threshold_zero_prunes_nothing(tmp_path):
    path, logp, bow = write_tiny(tmp_path)
    lm = read_arpa(path)
    same, stats = prune_lm(lm, 0.0)
    assert stats.before == stats.after == [5, 8, 5]
    assert same.logp == lm.logp
    for h in [(), ("a",), ("<s>", "a"), ("c", "c"), ("b", "a")]:
        for w in WORDS:  # bows recomputed from consistent ones: the same model
            assert same.logprob(w, h) == pytest.approx(lm.logprob(w, h), abs=1e-6)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        prune_lm(lm, -1e-7)


def test_arpa_round_trip(tmp_path):
    path, logp, bow = write_tiny(tmp_path)
    text = path.read_text()
    lm = read_arpa(path)
    assert lm.order == 3 and lm.discounts == [] and lm.counts() == [5, 8, 5]
    assert {g: v for t in lm.logp for g, v in t.items()} == logp and lm.bow == bow
    assert lm.to_arpa() == text  # the same 7-decimal format as ours
    write_arpa(lm, tmp_path / "copy.arpa.gz")
    write_arpa(lm, tmp_path / "copy.arpa")
    assert gzip.decompress((tmp_path / "copy.arpa.gz").read_bytes()).decode() == text
    assert (tmp_path / "copy.arpa").read_text() == text
    assert read_arpa(tmp_path / "copy.arpa.gz").to_arpa() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.arpa", "copy.arpa.gz",
                                                          "tiny.arpa"]  # no temp files left
    # a trained model, and another layout: a preamble, spaces for tabs, 4 decimals
    kn = train_kneser_ney([["a", "b"], ["b", "c", "a"]], order=3)
    (tmp_path / "kn.arpa").write_text(kn.to_arpa())
    assert read_arpa(tmp_path / "kn.arpa").to_arpa() == kn.to_arpa()
    (tmp_path / "cmu.arpa").write_text("made by hand\n\\data\\\nngram 1=2\nngram 2=1\n\n"
                                       "\\1-grams:\n-0.3010 </s>  -0.5\n-99 <s> -0.1\n"
                                       "-0.3010 a  0.0000\n\n\\2-grams:\n-0.1 <s> a\n\\end\\\n")
    with pytest.raises(ValueError) as e:
        read_arpa(tmp_path / "cmu.arpa")
    assert str(e.value) == (f"{tmp_path / 'cmu.arpa'}, line 3: the header declares "
                            "ngram 1=2, but 3 1-grams follow")
    (tmp_path / "cmu.arpa").write_text((tmp_path / "cmu.arpa").read_text().replace("1=2", "1=3"))
    cmu = read_arpa(tmp_path / "cmu.arpa")
    assert cmu.logp[1] == {("<s>", "a"): -0.1} and cmu.bow[("a",)] == 0.0


@pytest.mark.parametrize("line, message", [
    ("-0.5\ta", "expected a 2-gram (log10 prob, 2 words, optional backoff weight), "
                "got '-0.5\\ta'"),
    ("-0.5\ta b c d", "expected a 2-gram (log10 prob, 2 words, optional backoff weight), "
                      "got '-0.5\\ta b c d'"),
    ("x\ta b", "not a number in 'x\\ta b'"),
    ("-0.2\t<s> a", "'<s> a' is listed twice"),
])
def test_malformed_arpa_names_file_and_line(tmp_path, line, message):
    path, _, _ = write_tiny(tmp_path)
    lines = path.read_text().splitlines()
    at = lines.index("\\2-grams:") + 3  # 0-based: the 3rd bigram line, line at + 1
    lines[at] = line
    bad = tmp_path / "bad.arpa.gz"
    bad.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(ValueError) as e:
        read_arpa(bad)
    assert str(e.value) == f"{bad}, line {at + 1}: {message}"


def test_prune_lm_verb(tmp_path):
    path, _, _ = write_tiny(tmp_path)
    (tmp_path / "words.txt").write_text("<eps> 0\na 1\nb 2\n")
    assert main(["prune-lm", str(path), str(tmp_path / "out.arpa.gz"), "--threshold", "0.01",
                 "--vocab", str(tmp_path / "words.txt")]) == 0
    out = read_arpa(tmp_path / "out.arpa.gz")
    assert [g[0] for g in out.logp[0]] == ["</s>", "<s>", "a", "b"]
    sums_to_one(out)
    assert main(["prune-lm", str(path), str(tmp_path / "x.arpa")]) == 1  # nothing to do
    assert not (tmp_path / "x.arpa").exists()


def test_slice_of_lm_en_us(tmp_path):
    """The real 72k-word trigram restricted to its 2,000 most probable words (the CI slice)."""
    lm = read_arpa(corpus("lm_en_us") / "en-us.arpa.gz")
    assert lm.counts() == [72547, 2051541, 1669625]
    top = sorted((g[0] for g in lm.logp[0] if g[0] != BOS), key=lambda w: -lm.logp[0][(w,)])
    words = top[:2000]
    sliced = restrict_vocab(lm, words)
    assert sliced.counts() == [2001, 502382, 1080229]  # the 2,000 words include </s>
    vocab = [g[0] for g in sliced.logp[0] if g[0] != BOS]
    rng = random.Random(0)
    histories = [(), ("<s>",), ("the",), ("<s>", "the"), ("of", "the"), ("the", "of")]
    for h in histories + rng.sample(sorted(sliced.logp[1]), 10):
        assert sum(10 ** sliced.logprob(w, h) for w in vocab) == pytest.approx(1, abs=1e-9), h
    sentences = [s.split() for s in ["the man said that he would go to the house",
                                     "it was a good day for all of us",
                                     "we have to do what is right for the people"]]
    full, small = lm.perplexity(sentences), sliced.perplexity(sentences)
    # in-vocabulary text: the slice gives its words the mass of the words it dropped
    assert 20 < small < full < 1.5 * small
    pruned, stats = prune_lm(sliced, 1e-7)
    assert stats.after[0] == 2001 and stats.after[1] < 502382 and stats.after[2] < 1080229
    assert small / 1.25 < pruned.perplexity(sentences) < 1.25 * small
