"""`asr-kd prune-lm`: an ARPA LM restricted to a word list and/or pruned by relative entropy
(asr_kd.lang.prune), e.g. lm_en_us made small enough for its decoding graph to fit in memory.

    asr-kd prune-lm en-us.arpa.gz lm_1e-7.arpa.gz --threshold 1e-7
    asr-kd prune-lm en-us.arpa.gz lm_ci.arpa --vocab words.txt

The word list is read as its lines' first fields, so a Kaldi words.txt serves as well as a plain
list. With both options the LM is restricted first, then pruned.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from asr_kd.lang.ngram import read_arpa, write_arpa
from asr_kd.lang.prune import PruneStats, prune_lm, restrict_vocab

log = logging.getLogger(__name__)


def read_word_list(path) -> list[str]:
    """The first field of every non-empty line."""
    return [line.split()[0] for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _counts(counts: list[int]) -> str:
    return ", ".join(f"{n}-grams {c}" for n, c in enumerate(counts, 1))


def run_prune_lm(in_arpa, out_arpa, threshold: float = 0.0,
                 vocab: str | None = None) -> PruneStats | None:
    """Read, restrict (`vocab`), prune (`threshold` > 0), write; the pruning's counts."""
    if not threshold and vocab is None:
        raise ValueError("nothing to do: give --threshold (> 0) or --vocab")
    t0 = time.time()
    lm = read_arpa(in_arpa)
    log.info("read %s in %.1fs: %s", in_arpa, time.time() - t0, _counts(lm.counts()))
    stats = None
    if vocab is not None:
        t0 = time.time()
        words = read_word_list(vocab)
        lm = restrict_vocab(lm, words)
        log.info("restricted to the %d words of %s (with <s>, </s>) in %.1fs: %s", len(words),
                 vocab, time.time() - t0, _counts(lm.counts()))
    if threshold:
        t0 = time.time()
        lm, stats = prune_lm(lm, threshold)
        log.info("pruned at %g in %.1fs: %s", threshold, time.time() - t0, stats)
    t0 = time.time()
    write_arpa(lm, out_arpa)
    log.info("wrote %s in %.1fs", out_arpa, time.time() - t0)
    return stats
