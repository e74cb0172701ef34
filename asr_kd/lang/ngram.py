"""Interpolated modified Kneser-Ney n-gram LMs (Chen & Goodman, 1998), written as ARPA.

Counting follows KenLM and SRILM: the highest order, and n-grams that start with `<s>` (nothing
can precede them), keep their raw counts; every other lower-order n-gram counts the distinct
words seen before it (its continuation count). Each order has its own discounts D1, D2, D3+
from its counts-of-counts. Unigrams are interpolated with a uniform distribution over the
vocabulary, so vocabulary words never seen in training still get probability. The vocabulary is
closed: there is no `<unk>`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BOS, EOS = "<s>", "</s>"
# KenLM's --discount_fallback: used where counts-of-counts cannot give valid discounts
# (a count-of-count of zero, as in tiny corpora, or a discount outside (0, k)).
FALLBACK = (0.5, 1.0, 1.5)


def estimate_discounts(count_of_counts: Mapping[int, int]) -> tuple[float, float, float]:
    """D1, D2, D3+ from n1..n4 (Chen & Goodman eq. 26), or FALLBACK when undefined."""
    n1, n2, n3, n4 = (count_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return d if all(0 < dk < k for k, dk in enumerate(d, 1)) else FALLBACK


@dataclass
class NgramLM:
    order: int
    logp: list[dict[tuple[str, ...], float]]  # log10 P per order (index n-1), ARPA's entries
    bow: dict[tuple[str, ...], float]  # log10 backoff weight per context that has one
    discounts: list[tuple[float, float, float]]  # (D1, D2, D3+) per order (index n-1)

    @property
    def vocab(self) -> list[str]:
        """Words the model can predict (`</s>` included, `<s>` not)."""
        return sorted(g[0] for g in self.logp[0] if g[0] != BOS)

    def logprob(self, word: str, history: Iterable[str] = ()) -> float:
        """log10 P(word | history) by ARPA backoff; -inf for a word outside the vocabulary."""
        h = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            lp = self.logp[len(h)].get(h + (word,))
            if lp is not None:
                return backoff + lp
            if not h:
                return -math.inf
            backoff += self.bow.get(h, 0.0)
            h = h[1:]

    def perplexity(self, sentences: Iterable[list[str]]) -> float:
        """Per-token perplexity, `</s>` counted as a token (as SRILM's ppl)."""
        total, n = 0.0, 0
        for s in sentences:
            toks = [BOS, *s, EOS]
            for i in range(1, len(toks)):
                total += self.logprob(toks[i], toks[:i])
                n += 1
        return 10 ** (-total / n)

    def to_arpa(self) -> str:
        lines = ["\\data\\"] + [f"ngram {n}={len(t)}" for n, t in enumerate(self.logp, 1)]
        for n, table in enumerate(self.logp, 1):
            lines += ["", f"\\{n}-grams:"]
            for g in sorted(table):
                bow = f"\t{self.bow[g]:.7f}" if g in self.bow else ""
                lines.append(f"{table[g]:.7f}\t{' '.join(g)}{bow}")
        return "\n".join(lines + ["", "\\end\\", ""])


def train_kneser_ney(sentences: Iterable[list[str]], order: int = 3,
                     vocab: Iterable[str] | None = None) -> NgramLM:
    """Train an interpolated modified Kneser-Ney LM; `vocab` adds words not in `sentences`."""
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, got {order}")
    raw = [Counter() for _ in range(order)]  # raw[n-1]: counts of n-grams
    for s in sentences:
        toks = (BOS, *s, EOS)
        for i in range(1, len(toks)):  # every predicted token with each (truncated) history
            for n in range(1, min(order, i + 1) + 1):
                raw[n - 1][toks[i - n + 1:i + 1]] += 1
    if not raw[0]:
        raise ValueError("no training sentences")

    adj = [Counter() for _ in range(order)]
    adj[-1] = Counter(raw[-1])
    for n in range(order - 1, 0, -1):  # continuation counts: distinct left extensions
        for g in raw[n]:
            adj[n - 1][g[1:]] += 1
        for g, c in raw[n - 1].items():
            if g[0] == BOS:
                adj[n - 1][g] = c
    words = {g[0] for g in raw[0]} | set(vocab or ()) | {EOS}
    words.discard(BOS)

    discounts = [estimate_discounts(Counter(a.values())) for a in adj]
    prob: list[dict[tuple[str, ...], float]] = [{} for _ in range(order)]
    gamma: dict[tuple[str, ...], float] = {}
    for n in range(order):
        d = discounts[n]
        total: dict[tuple[str, ...], int] = defaultdict(int)
        discounted: dict[tuple[str, ...], float] = defaultdict(float)
        for g, a in adj[n].items():
            total[g[:-1]] += a
            discounted[g[:-1]] += d[min(a, 3) - 1]
        gamma.update({h: discounted[h] / total[h] for h in total})
        if n == 0:  # unseen vocabulary words get only the interpolated uniform share
            prob[0] = {(w,): gamma[()] / len(words) for w in words}
        for g, a in adj[n].items():
            # Lower orders always hold g[1:]: g's first word is one of its left extensions.
            lower = 1 / len(words) if n == 0 else prob[n - 1][g[1:]]
            prob[n][g] = (a - d[min(a, 3) - 1]) / total[g[:-1]] + gamma[g[:-1]] * lower

    logp = [{g: math.log10(p) for g, p in t.items()} for t in prob]
    logp[0][(BOS,)] = -99.0  # never predicted; listed for its backoff weight (and kaldilm)
    # In an interpolated model P(w|h) for unlisted hw is gamma(h) * P(w|h'): gamma is the bow.
    bow = {h: math.log10(gm) for h, gm in gamma.items() if h}
    return NgramLM(order, logp, bow, discounts)
