"""Backoff n-gram LMs in ARPA format: read, written, and trained by interpolated modified
Kneser-Ney (Chen & Goodman, 1998). Pruning and vocabulary restriction: asr_kd.lang.prune.

An ARPA model gives log10 P(w|h) for its listed n-grams hw; for an unlisted one
P(w|h) = bow(h) P(w|h'), h' being h without its first word, and a context without a listed
backoff weight has bow 1 (log10 0).

Counting follows KenLM and SRILM: the highest order, and n-grams that start with `<s>` (nothing
can precede them), keep their raw counts; every other lower-order n-gram counts the distinct
words seen before it (its continuation count). Each order has its own discounts D1, D2, D3+
from its counts-of-counts. Unigrams are interpolated with a uniform distribution over the
vocabulary, so vocabulary words never seen in training still get probability. The vocabulary is
closed: there is no `<unk>`.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from asr_kd.utils.io import atomic_path

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

    def counts(self) -> list[int]:
        """Number of n-grams per order (index n-1), as the ARPA header lists them."""
        return [len(t) for t in self.logp]

    def arpa_lines(self) -> Iterator[str]:
        """The ARPA file, line by line (no newlines); n-grams sorted within each order."""
        yield "\\data\\"
        yield from (f"ngram {n}={len(t)}" for n, t in enumerate(self.logp, 1))
        bows = self.bow
        for n, table in enumerate(self.logp, 1):
            yield ""
            yield f"\\{n}-grams:"
            for g in sorted(table):
                bow = bows.get(g)
                tail = "" if bow is None else f"\t{bow:.7f}"
                yield f"{table[g]:.7f}\t{' '.join(g)}{tail}"
        yield ""
        yield "\\end\\"

    def to_arpa(self) -> str:
        return "".join(f"{line}\n" for line in self.arpa_lines())


def read_arpa(path: str | os.PathLike) -> NgramLM:
    """An ARPA file (gzip if its name ends in .gz) as an NgramLM (`discounts` empty).

    Text before `\\data\\` is skipped, as SRILM does. A line that is not an n-gram of its
    section's order (log-probability, n words, optional backoff weight, whitespace between
    them), a repeated n-gram, a section the header does not declare, a count that differs from
    the header's or a missing `\\end\\` is a ValueError naming the file and line.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as raw:
        return _parse_arpa(io.TextIOWrapper(raw, encoding="utf-8"), str(path))


def _parse_arpa(lines: Iterable[str], name: str) -> NgramLM:
    declared: dict[int, tuple[int, int]] = {}  # order -> (count, line number of its header)
    logp: list[dict[tuple[str, ...], float]] = []
    bow: dict[tuple[str, ...], float] = {}
    intern = sys.intern  # one string object per word, not one per occurrence (memory)
    state = "preamble"  # -> "header" -> "ngrams" -> "end"
    n, table, read, no = 0, {}, 0, 0

    def fail(msg: str, line_no: int | None = None) -> ValueError:
        return ValueError(f"{name}, line {line_no or no}: {msg}")

    def close_section() -> None:
        if n and read != declared[n][0]:
            raise fail(f"the header declares ngram {n}={declared[n][0]}, but {read} "
                       f"{n}-grams follow", declared[n][1])

    for no, line in enumerate(lines, 1):
        if state == "ngrams" and line[0] not in "\\\n\r":  # the hot path: an n-gram line
            f = line.split()
            k = len(f) - n  # 1: no backoff weight, 2: one
            if k != 1 and k != 2:
                if not f:
                    continue
                raise fail(f"expected a {n}-gram (log10 prob, {n} word{'s' * (n > 1)}, "
                           f"optional backoff weight), got {line.strip()!r}")
            try:
                p = float(f[0])
                b = float(f[-1]) if k == 2 else None
            except ValueError:
                raise fail(f"not a number in {line.strip()!r}") from None
            g = tuple(map(intern, f[1:n + 1]))
            if b is not None:
                bow[g] = b
            if g in table:
                raise fail(f"{' '.join(g)!r} is listed twice")
            table[g] = p
            read += 1
            continue
        text = line.strip()
        if not text:
            continue
        if state == "preamble":
            if text == "\\data\\":
                state = "header"
            continue
        if state == "header" and text.startswith("ngram "):
            order, _, count = text[6:].partition("=")
            if not (order.strip().isdigit() and count.strip().isdigit()):
                raise fail(f"expected 'ngram N=COUNT', got {text!r}")
            declared[int(order)] = (int(count), no)
            continue
        if state in ("header", "ngrams") and text.startswith("\\") and text.endswith("-grams:"):
            close_section()
            order = text[1:-7]
            want = len(logp) + 1
            if not order.isdigit() or int(order) != want or want not in declared:
                raise fail(f"expected the \\{want}-grams: section (the header declares "
                           f"orders {sorted(declared)}), got {text!r}")
            n, table, read = want, {}, 0
            logp.append(table)
            state = "ngrams"
            continue
        if state == "ngrams" and text == "\\end\\":
            close_section()
            state = "end"
            break
        raise fail(f"unexpected line {text!r}")
    if state != "end":
        raise fail("the file ends before \\end\\" if state != "preamble"
                   else "no \\data\\ header")
    if len(logp) != max(declared):
        raise fail(f"the header declares orders {sorted(declared)}, but only "
                   f"{len(logp)} sections follow")
    return NgramLM(len(logp), logp, bow, [])


def write_arpa(lm: NgramLM, path: str | os.PathLike) -> None:
    """Write `lm` as ARPA text (gzip if the name ends in .gz), atomically, without holding the
    whole text in memory."""
    path = Path(path)
    with atomic_path(path) as tmp:
        raw = gzip.open(tmp, "wb", compresslevel=6) if path.name.endswith(".gz") \
            else open(tmp, "wb")
        with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as f:
            f.writelines(f"{line}\n" for line in lm.arpa_lines())


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
