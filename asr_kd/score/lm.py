"""A test set's OOV rate and its perplexity under the recipe's ARPA LM, for the report.

The LM is read from the ARPA file itself (data/local/lm.arpa) and scored by ARPA backoff, as
asr_kd.lang.ngram.NgramLM scores the models it trains (NgramLM.perplexity: per token, `</s>`
counted, as SRILM's ppl; tests/test_report_kd.py checks that the two agree). The score
layer sits below lang (tests/test_layers.py), hence this reader rather than an import. A token
the LM does not know is scored as `<unk>` (or `<UNK>`) where the LM has it; otherwise it is
left out of the perplexity, as SRILM leaves out OOVs, and stays in the history, where backoff
passes over it.

The OOV rate is the share of reference tokens outside the lexicon's words.txt; a reference
token that is itself `<unk>` or `<UNK>` (a word the corpus preparation found in no lexicon, as
local/librispeech.py writes them) counts as out of vocabulary too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

BOS, EOS = "<s>", "</s>"
UNKS = ("<unk>", "<UNK>")  # an LM's unknown-word token, as SRILM and LibriSpeech spell it
# words.txt entries that are not words of a transcript
_SPECIAL = {"<eps>", "#0", BOS, EOS}


class ArpaLM:
    def __init__(self, path):
        self.logp: dict[tuple[str, ...], float] = {}
        self.bow: dict[tuple[str, ...], float] = {}
        order = 0
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                continue
            m = re.fullmatch(r"\\(\d+)-grams:", line)
            if m:
                order = int(m.group(1))
                continue
            if order == 0:
                continue
            f = line.split()
            gram = tuple(f[1:1 + order])
            self.logp[gram] = float(f[0])
            if len(f) > 1 + order:
                self.bow[gram] = float(f[1 + order])
        self.order = max((len(g) for g in self.logp), default=0)
        if not self.order:
            raise ValueError(f"{path}: no n-grams in this ARPA file")
        self.vocab = {g[0] for g in self.logp if len(g) == 1}

    def logprob(self, word: str, history: tuple[str, ...]) -> float:
        """log10 P(word | history) by backoff (word in the vocabulary)."""
        h = history[len(history) - self.order + 1:] if self.order > 1 else ()
        backoff = 0.0
        while (lp := self.logp.get(h + (word,))) is None:
            if not h:
                return -math.inf
            backoff += self.bow.get(h, 0.0)
            h = h[1:]
        return backoff + lp

    def perplexity(self, sentences: Iterable[list[str]]) -> float | None:
        """Per-token perplexity, `</s>` counted; None with no token to score."""
        unk = next((u for u in UNKS if u in self.vocab), None)
        total, n = 0.0, 0
        for s in sentences:
            hist: tuple[str, ...] = (BOS,)
            for w in [*s, EOS]:
                if w not in self.vocab and unk:
                    w = unk
                if w in self.vocab:
                    total += self.logprob(w, hist)
                    n += 1
                hist += (w,)
        return 10 ** (-total / n) if n else None


def read_words(path) -> set[str]:
    """The words of a words.txt (symbol table), its special symbols left out."""
    return {f[0] for line in Path(path).read_text(encoding="utf-8").splitlines()
            if (f := line.split())} - _SPECIAL


def oov_rate(texts: Iterable[list[str]], words: set[str]) -> float | None:
    """Share (0 to 1) of the tokens not in `words` (or unknown-word tokens); None with no
    token."""
    toks = [w for t in texts for w in t]
    return sum(w not in words or w in UNKS for w in toks) / len(toks) if toks else None
