"""Relative-entropy pruning of backoff n-gram LMs, and their restriction to a vocabulary.

    asr-kd prune-lm en-us.arpa.gz lm_pruned.arpa.gz --threshold 1e-7 [--vocab words.txt]

`prune_lm` is Stolcke's entropy-based pruning ("Entropy-based pruning of backoff language
models", 1998) as SRILM's `ngram -prune THRESHOLD` does it (Ngram::pruneProbs). Removing the
n-gram hw, h its context and h' = h without its first word, leaves P(w|h) = bow'(h) P(w|h') and
changes every backed-off P(v|h) from bow(h) P(v|h') to bow'(h) P(v|h'), which changes the
model's entropy by (natural logs; explicit: the n-grams h v the model lists)

    D = -P(h) { P(w|h) [log P(w|h') + log bow'(h) - log P(w|h)]
                + [log bow'(h) - log bow(h)] (1 - sum_{explicit v} P(v|h)) }
    bow'(h) = (1 - sum_{explicit v} P(v|h) + P(w|h)) / (1 - sum_{explicit v} P(v|h') + P(w|h'))

and hw is pruned when the relative perplexity increase exp(D) - 1 is below the threshold.
As in SRILM: unigrams are never pruned; the highest order goes first; every candidate is judged
against the unpruned model, alone (the D of two removals is not recomputed for their sum);
an n-gram that is the context of a surviving longer n-gram stays; P(h) is the model's own
chain-rule probability of h, where a leading `<s>` counts with the unigram P(`</s>`) (SRILM's
LM::contextProb: a sentence starts wherever one ended). Threshold 0 prunes nothing. One
difference: a context that leaves the order below no mass (it lists every word that order
gives mass to, as in small slices) is not pruned; SRILM finds each of its n-grams free to
remove alone (D = 0) and so removes them all.

`restrict_vocab` keeps only the n-grams whose words are all in a word list (`<s>` and `</s>`
always), scales the unigrams to sum to 1 again, and recomputes the backoff weights: a slice of
a large LM over a small vocabulary, e.g. the one CI decodes with.

Both end in `_renormalise`, which recomputes every backoff weight, lower orders first, so that
each context's distribution sums to 1 (SRILM's computeBOW):

    bow(h) = (1 - sum_{explicit w} P(w|h)) / (1 - sum_{explicit w} P(w|h'))

P(w|h') being the backed-off probability of the model below. Contexts left with no n-gram
after them lose their backoff weight (1, written as none).

The work is numpy over integer arrays: each order's n-grams are rows of word ids, sorted by
(row of their context in the order below, last word), so every lookup is a searchsorted.
Checked against the Kaldi/icefall port of SRILM's pruning (ngram_entropy_pruning.py, its
one-word `<s>` context fixed to use P(</s>) as SRILM does): the same n-grams survive on
lm_en_us at 1e-7, backoff weights within 5e-8. On lm_en_us (72,547 / 2,051,541 / 1,669,625
n-grams), one core: reading 7 s, pruning 7-9 s, under 2.4 GB in all; 2-/3-grams left
1,902,189 / 1,633,428 at 1e-8, 821,289 / 443,924 at 1e-7, 179,573 / 53,879 at 1e-6.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress

import numpy as np

from asr_kd.lang.ngram import BOS, EOS, NgramLM

log = logging.getLogger(__name__)

LN10 = math.log(10)
LOG_ZERO = -99.0  # log10 of probability 0 in ARPA files (SRILM's LogP_PseudoZero)
# A bow's numerator or denominator (a probability mass) within this of 0 is taken for 0: it is
# rounding (of sums of thousands of terms, of probabilities written with 4 or 7 decimals), not
# mass. SRILM's Prob_Epsilon, which plays the same part in its computeBOW.
MASS_EPS = 3e-6


@dataclass
class PruneStats:
    threshold: float
    before: list[int]  # n-grams per order (index n-1)
    after: list[int]

    def __str__(self) -> str:
        return ", ".join(f"{n}-grams {b} -> {a}"
                         for n, (b, a) in enumerate(zip(self.before, self.after), 1))


@dataclass
class _Order:
    """One order's n-grams, rows sorted by key = ctx * V + last word."""

    words: np.ndarray  # [N, n] int32 word ids
    ctx: np.ndarray  # [N] int64 row of the context (first n-1 words) in the order below; 0 for n=1
    key: np.ndarray  # [N] int64, ascending
    logp: np.ndarray  # [N] float64 log10 P(w|h)
    bow: np.ndarray  # [N] float64 log10 bow of the n-gram as a context (0 where none)
    has_bow: np.ndarray  # [N] bool: the n-gram carries a backoff weight


class _Model:
    def __init__(self, vocab: list[str], orders: list[_Order]):
        self.vocab = vocab  # id -> word
        self.V = len(vocab)
        self.orders = orders
        self.ids = {w: i for i, w in enumerate(vocab)}

    def counts(self) -> list[int]:
        return [len(o.key) for o in self.orders]

    def find(self, n: int, ctx: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Row of the n-gram (context row `ctx` in order n-1, `word`) in order n; -1 if absent
        (or if ctx is -1)."""
        keys = self.orders[n - 1].key
        key = ctx * self.V + word
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        ok = (ctx >= 0) & (keys[pos] == key) if len(keys) else np.zeros(len(key), bool)
        return np.where(ok, pos, -1)

    def index(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the m-grams `words` [N, m] in order m and of their contexts (first m-1
        words) in order m-1; -1 where absent."""
        row = np.zeros(len(words), np.int64)
        ctx = row
        for j in range(words.shape[1]):
            ctx = row
            row = self.find(j + 1, ctx, words[:, j])
        return row, ctx

    def logprob(self, words: np.ndarray) -> np.ndarray:
        """log10 P(last word | the words before it) by ARPA backoff, per row of `words` [N, k]
        (k <= order)."""
        n_rows, k = words.shape
        out = np.full(n_rows, -np.inf)
        acc = np.zeros(n_rows)  # backoff weights collected on the way down
        todo = np.arange(n_rows)
        for start in range(k):  # the n-gram words[:, start:], longest first
            n = k - start
            row, ctx = self.index(words[todo, start:])
            hit = row >= 0
            out[todo[hit]] = acc[todo[hit]] + self.orders[n - 1].logp[row[hit]]
            todo, ctx = todo[~hit], ctx[~hit]
            if n == 1 or not len(todo):
                break
            has = ctx >= 0  # an absent context has no backoff weight: bow 1
            acc[todo[has]] += self.orders[n - 2].bow[ctx[has]]
        return out

    def context_logprob(self, words: np.ndarray) -> np.ndarray:
        """log10 P(h) of the contexts `words` [N, m] by the chain rule, a leading <s> counted
        with P(</s>) (SRILM's LM::contextProb)."""
        first = words[:, :1].copy()
        if BOS in self.ids and EOS in self.ids:
            first[first == self.ids[BOS]] = self.ids[EOS]
        total = self.logprob(first)
        for i in range(1, words.shape[1]):
            total += self.logprob(words[:, :i + 1])
        return total


def _from_lm(lm: NgramLM) -> _Model:
    vocab = sorted(g[0] for g in lm.logp[0])
    model = _Model(vocab, [])
    ids = model.ids
    for n, table in enumerate(lm.logp, 1):
        try:
            flat = np.fromiter((ids[w] for g in table for w in g), np.int32, len(table) * n)
        except KeyError as e:
            raise ValueError(f"{n}-grams: the word {e.args[0]!r} is not a unigram") from None
        words = flat.reshape(len(table), n)
        if n == 1:
            ctx = np.zeros(len(table), np.int64)
        else:
            ctx, _ = model.index(words[:, :-1])
            if (ctx < 0).any():
                g = " ".join(vocab[i] for i in words[np.argmax(ctx < 0)])
                raise ValueError(f"the {n}-gram {g!r} has no {n - 1}-gram for its context")
        key = ctx * model.V + words[:, -1]
        order = np.argsort(key, kind="stable")
        logp = np.fromiter(table.values(), np.float64, len(table))
        has_bow = np.fromiter((g in lm.bow for g in table), bool, len(table))
        bow = np.fromiter((lm.bow.get(g, 0.0) for g in table), np.float64, len(table))
        model.orders.append(_Order(words[order], ctx[order], key[order], logp[order],
                                   bow[order], has_bow[order]))
    return model


def _to_lm(model: _Model) -> NgramLM:
    words = np.array(model.vocab, dtype=object)
    logp, bows = [], {}
    for n, o in enumerate(model.orders, 1):
        grams = list(zip(*(words[o.words[:, j]] for j in range(n))))
        logp.append(dict(zip(grams, o.logp.tolist())))
        bows.update(zip(compress(grams, o.has_bow), o.bow[o.has_bow].tolist()))
    return NgramLM(len(model.orders), logp, bows, [])


def _subset(model: _Model, keep: list[np.ndarray]) -> _Model:
    """The model with only the rows `keep` (per order); a kept n-gram's context must be kept."""
    orders = []
    for n, (o, k) in enumerate(zip(model.orders, keep), 1):
        if n == 1:
            ctx = o.ctx[k]
        else:  # context rows renumbered: the order below lost rows (monotone, so keys stay sorted)
            new_row = np.cumsum(keep[n - 2]) - 1
            ctx = new_row[o.ctx[k]]
        orders.append(_Order(o.words[k], ctx, ctx * model.V + o.words[k, -1], o.logp[k].copy(),
                             o.bow[k].copy(), o.has_bow[k].copy()))
    return _Model(model.vocab, orders)


def _masses(model: _Model, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of order n-1, as a context h: 1 - sum P(w|h), 1 - sum P(w|h') (the sums over
    the n-grams hw the model lists; P(w|h') backed off) and the number of those n-grams; and
    per n-gram of order n, log10 P(w|h')."""
    o, n_ctx = model.orders[n - 1], len(model.orders[n - 2].key)
    lower = model.logprob(o.words[:, 1:])
    num = 1 - np.bincount(o.ctx, weights=10.0 ** o.logp, minlength=n_ctx)
    den = 1 - np.bincount(o.ctx, weights=10.0 ** lower, minlength=n_ctx)
    num[(num < 0) & (num > -MASS_EPS)] = 0.0
    den[np.abs(den) < MASS_EPS] = 0.0
    return num, den, np.bincount(o.ctx, minlength=n_ctx), lower


def _renormalise(model: _Model) -> None:
    """Recompute every backoff weight, lower orders first (a bow of order n-1 is computed with
    the new bows below it), so that every context's distribution sums to 1. In place.

    As SRILM's computeBOW: where the order below leaves no mass for the words h does not list
    (denominator 0) the explicit P(w|h) are scaled to sum to 1 and bow(h) = 1; where a mass is
    negative (a broken model) bow(h) = 0, with a warning."""
    for n in range(2, len(model.orders) + 1):
        num, den, children, _ = _masses(model, n)
        o, below = model.orders[n - 1], model.orders[n - 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            bow = np.log10(num) - np.log10(den)
        bow[(num == 0) & (den > 0)] = LOG_ZERO
        scale = (den == 0) & (num > 0)
        bow[(den == 0) & (num >= 0)] = 0.0
        if scale.any():
            rows = scale[o.ctx]
            o.logp[rows] -= np.log10(1 - num[o.ctx[rows]])
            log.info("%d %d-gram contexts list every word the order below gives mass to: "
                     "their %d-grams scaled to sum to 1", scale.sum(), n - 1, n)
        broken = (children > 0) & ((num < 0) | (den < 0))
        if broken.any():
            log.warning("%d %d-gram contexts cannot be normalised (their %d-grams, or the "
                        "same words one order below, sum to more than 1): backoff weight 0",
                        broken.sum(), n - 1, n)
            bow[broken] = LOG_ZERO
        below.has_bow = children > 0
        below.bow = np.where(below.has_bow, bow, 0.0)
    top = model.orders[-1]
    top.has_bow = np.zeros(len(top.key), bool)
    top.bow = np.zeros(len(top.key))


def prune_lm(lm: NgramLM, threshold: float) -> tuple[NgramLM, PruneStats]:
    """Stolcke's relative-entropy pruning at `threshold` (SRILM's `ngram -prune`); see the
    module docstring. Returns the pruned model, renormalised, and its counts."""
    if not threshold >= 0:
        raise ValueError(f"the pruning threshold must be >= 0, got {threshold}")
    model = _from_lm(lm)
    keep = [np.ones(c, bool) for c in model.counts()]
    needed = None  # rows of order n that are the context of a kept (n+1)-gram
    for n in range(len(model.orders), 1, -1):
        o, below = model.orders[n - 1], model.orders[n - 2]
        num, den, children, lower = _masses(model, n)
        # Only contexts that leave mass to the order below are judged. One that lists every
        # word the order below gives mass to (den 0) is left whole: removing any one of its
        # n-grams alone costs nothing (bow' P(w|h') = P(w|h)), so SRILM removes them all.
        judged = (num >= 0) & (den > 0)
        ctx_rows = np.flatnonzero(children)
        p_h = np.zeros(len(below.key))
        p_h[ctx_rows] = 10.0 ** model.context_logprob(below.words[ctx_rows])
        # natural logs from here: D in nats, the perplexity ratio is exp(D)
        lp = o.logp * LN10  # log P(w|h)
        lq = lower * LN10  # log P(w|h')
        p, q = np.exp(lp), np.exp(lq)
        m_h, d_h = num[o.ctx], den[o.ctx]
        with np.errstate(divide="ignore", invalid="ignore"):
            new_bow = np.log(m_h + p) - np.log(d_h + q)  # log bow'(h)
            delta = -p_h[o.ctx] * (p * (lq + new_bow - lp)
                                   + m_h * (new_bow - below.bow[o.ctx] * LN10))
            pruned = (threshold > 0) & (np.expm1(delta) < threshold) & judged[o.ctx]
        if needed is not None:  # the context of a surviving longer n-gram stays
            pruned &= ~needed
        keep[n - 1] = ~pruned
        needed = np.zeros(len(below.key), bool)
        needed[o.ctx[keep[n - 1]]] = True
    out = _subset(model, keep)
    _renormalise(out)
    return _to_lm(out), PruneStats(threshold, model.counts(), out.counts())


def restrict_vocab(lm: NgramLM, words: Iterable[str]) -> NgramLM:
    """The slice of `lm` over `words` (plus <s> and </s>): the n-grams whose words are all in
    it, unigrams scaled to sum to 1, backoff weights recomputed. Words the LM lacks are
    ignored."""
    model = _from_lm(lm)
    in_vocab = np.zeros(model.V, bool)
    in_vocab[[model.ids[w] for w in {*words, BOS, EOS} if w in model.ids]] = True
    sliced = _subset(model, [in_vocab[o.words].all(axis=1) for o in model.orders])
    uni = sliced.orders[0]
    real = uni.words[:, 0] != model.ids.get(BOS, -1)  # <s> is never predicted: stays at -99
    uni.logp[real] -= np.log10(np.sum(10.0 ** uni.logp[real]))
    _renormalise(sliced)
    return _to_lm(sliced)
