"""Is a distilled student's WER really lower than its hard-target twin's? A paired bootstrap
over the test utterances (Koehn 2004; Bisani & Ney 2004), pooled over seeds.

Inputs: errors_a[k][u] and errors_b[k][u], the word errors (edit distance, as compute_wer
counts them) of systems a and b on utterance u for seed pair k (a's seed-k run beside b's
seed-k run), and words[u], utterance u's reference words. The statistic is the WER difference
in points, pooled over the seed pairs:

    d = (sum_k sum_u errors_a[k][u] - sum_k sum_u errors_b[k][u]) / (K * sum_u words[u]) * 100

observed on the whole test set, then on `resamples` resamples of the utterances: each draws
N utterance indices uniformly with replacement, `rng.integers(0, N, size=N)` from
`numpy.random.default_rng(seed)`, one resample after another, and uses the same indices for
every seed pair (the pairing is by utterance and by seed). Reported: the observed difference,
the 95% percentile interval of the resampled differences (numpy.percentile at 2.5 and 97.5,
linear interpolation), and p_win, the share of resamples in which a has fewer errors than b
(d < 0), a tie (d == 0) counting half. A resample drawing only utterances with empty
references has no words: it is left out of the interval and of p_win.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_kd.score.wer import compute_wer

RESAMPLES = 1000
SEED = 0


def read_text(path) -> dict[str, list[str]]:
    """A Kaldi `text` file (utterance id, then its tokens) as {utt: tokens}."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        f = line.split()
        if f:
            out[f[0]] = f[1:]
    return out


def utterance_errors(refs: dict[str, list[str]], hyps: dict[str, list[str]],
                     utts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(errors, reference words) per utterance of `utts`, in that order, counted as
    compute_wer counts them (a missing hypothesis: all deletions)."""
    per_utt = compute_wer({u: refs[u] for u in utts}, hyps).per_utt
    return (np.array([per_utt[u] for u in utts], dtype=np.int64),
            np.array([len(refs[u]) for u in utts], dtype=np.int64))


def paired_bootstrap(errors_a, errors_b, words, resamples: int = RESAMPLES,
                     seed: int = SEED) -> dict:
    """The module doc's statistic for a against b. errors_a and errors_b: (K, N) (or (N,) for
    one seed pair) error counts, words: (N,) reference words."""
    a = np.atleast_2d(np.asarray(errors_a, dtype=np.int64))
    b = np.atleast_2d(np.asarray(errors_b, dtype=np.int64))
    words = np.asarray(words, dtype=np.int64)
    if a.shape != b.shape or a.shape[1:] != words.shape:
        raise ValueError(f"errors {a.shape} and {b.shape} and words {words.shape} do not match")
    k, n = a.shape
    if n == 0 or words.sum() == 0:
        raise ValueError("no reference words to compare the systems on")
    diff = (a - b).sum(axis=0)  # per utterance, summed over the seed pairs
    rng = np.random.default_rng(seed)
    d_sum, w_sum = np.empty(resamples, dtype=np.int64), np.empty(resamples, dtype=np.int64)
    for i in range(resamples):
        idx = rng.integers(0, n, size=n)
        d_sum[i], w_sum[i] = diff[idx].sum(), words[idx].sum()
    ok = w_sum > 0
    d_sum, w_sum = d_sum[ok], w_sum[ok]
    stats = 100.0 * d_sum / (k * w_sum)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    wins = (np.count_nonzero(d_sum < 0) + 0.5 * np.count_nonzero(d_sum == 0)) / len(d_sum)
    return {"wer_diff": round(float(100.0 * diff.sum() / (k * words.sum())), 4),
            "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "p_win": round(float(wins), 4), "resamples": resamples, "utterances": n,
            "rng_seed": seed}
