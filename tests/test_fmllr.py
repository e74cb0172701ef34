"""fMLLR (asr_kd.hmm.fmllr) on frames drawn from a known diagonal GMM and moved by a known affine
map: the estimate undoes the map, its auxiliary function never falls, speakers are batched
independently, and the statistics match their definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_kd.hmm.fmllr import FmllrStats, apply_fmllr, estimate_fmllr, fmllr_auxf
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.lda_mllt import gauss_posteriors

D = 4


def _gmm(rng, p: int = 5, m: int = 2) -> DiagGmm:
    return DiagGmm(torch.from_numpy(2 * rng.normal(size=(p, m, D))),
                   torch.from_numpy(rng.uniform(0.3, 2.0, size=(p, m, D))),
                   torch.log(torch.full((p, m), 1.0 / m, dtype=torch.float64)))


def _sample(rng, gmm: DiagGmm, n: int):
    p, m, _ = gmm.means.shape
    pdf = rng.integers(0, p, size=n)
    gauss = rng.integers(0, m, size=n)
    x = gmm.means[pdf, gauss].numpy() + rng.normal(size=(n, D)) * np.sqrt(
        gmm.variances[pdf, gauss].numpy())
    return x, torch.from_numpy(pdf), torch.from_numpy(gauss)


def _affine(rng):
    """A well-conditioned A (singular values in [0.7, 1.4]) and an offset b."""
    q1, _ = np.linalg.qr(rng.normal(size=(D, D)))
    q2, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return q1 @ np.diag(rng.uniform(0.7, 1.4, size=D)) @ q2, rng.normal(size=D)


def _estimate(x, pdf, gauss, gmm, **kw):
    stats = FmllrStats.zeros(1, D).accumulate(torch.from_numpy(x), pdf,
                                              torch.zeros(len(x), dtype=torch.long), gmm,
                                              gauss=gauss)
    W, hist = estimate_fmllr(stats, **kw)
    return W[0].numpy(), hist[:, 0].numpy(), stats


def test_fmllr_recovers_known_affine_map():
    rng = np.random.default_rng(0)
    gmm = _gmm(rng)
    n = 20000
    x, pdf, gauss = _sample(rng, gmm, n)
    A, b = _affine(rng)
    xs = x @ A.T + b  # the "speaker's" features
    W, hist, stats = _estimate(xs, pdf, gauss, gmm)
    a_inv = np.linalg.inv(A)
    # Tolerance: W is an ML regression fit from n frames, so its entries carry sampling error of
    # order 1 / sqrt(n) ~ 0.007 (times the mean spread, ~2, for the offset), propagated through
    # A^{-1} (norm <= 1 / 0.7). With this seed the errors are 0.006 (A) and 0.016 (b); 0.05
    # leaves room for that noise, while a transposed cofactor or the wrong root of the quadratic
    # miss by 0.5 and more, and a solve stopped after 2 passes by 0.07 (the exact equivariance
    # check below catches far smaller convergence errors).
    np.testing.assert_allclose(W[:, :D], a_inv, atol=0.05)
    np.testing.assert_allclose(W[:, D], -a_inv @ b, atol=0.05)
    # The auxf never falls across passes and ends above that of the true inverse map (the ML
    # estimate beats the truth on its own sample).
    assert (np.diff(hist) >= -1e-9 * np.abs(hist).max()).all(), hist
    assert hist[-1] > hist[0] + 0.1 * n  # the identity start was far off
    true = torch.from_numpy(np.concatenate([a_inv, (-a_inv @ b)[:, None]], 1))[None]
    assert hist[-1] >= float(fmllr_auxf(true, stats)[0])
    # Equivariance, exact up to convergence (no sampling error): estimating on x' = A x + b gives
    # the estimate on x composed with the inverse map.
    W0, _, _ = _estimate(x, pdf, gauss, gmm)
    comp = W[:, :D] @ np.concatenate([A, b[:, None]], 1)
    comp[:, D] += W[:, D]
    np.testing.assert_allclose(comp, W0, atol=1e-6)
    y = apply_fmllr(torch.from_numpy(W), torch.from_numpy(xs)).numpy()
    assert np.abs(y - x).mean() < 0.05


def test_fmllr_auxf_never_decreases_each_pass():
    """Harder case: a strongly scaled, offset map and soft posteriors from the alignment."""
    rng = np.random.default_rng(1)
    gmm = _gmm(rng, p=4, m=3)
    x, pdf, _ = _sample(rng, gmm, 3000)
    A, b = _affine(rng)
    A = 2.5 * A
    post = gauss_posteriors(gmm, torch.from_numpy(x), pdf)  # as if from the SI pass
    stats = FmllrStats.zeros(1, D).accumulate(torch.from_numpy(x @ A.T + 3 * b), pdf,
                                              torch.zeros(3000, dtype=torch.long), gmm,
                                              post=post)
    _, hist = estimate_fmllr(stats, num_iters=15)
    h = hist[:, 0].numpy()
    diffs = np.diff(h)
    assert (diffs >= -1e-9 * np.abs(h).max()).all(), diffs
    assert diffs[0] > 0 and h[-1] - h[0] > 0.5 * 3000


def test_fmllr_batched_speakers_are_independent():
    rng = np.random.default_rng(2)
    gmm = _gmm(rng)
    xs, pdfs, gs, spks, maps = [], [], [], [], []
    for s, n in enumerate([3000, 2000, 10]):  # the last speaker is under min_count
        x, pdf, gauss = _sample(rng, gmm, n)
        A, b = _affine(rng)
        maps.append((A, b))
        xs.append(x @ A.T + b)
        pdfs.append(pdf)
        gs.append(gauss)
        spks.append(torch.full((n,), s))
    order = torch.from_numpy(rng.permutation(5010))  # speakers interleaved within chunks
    x = torch.from_numpy(np.concatenate(xs))[order]
    pdf, gauss, spk = torch.cat(pdfs)[order], torch.cat(gs)[order], torch.cat(spks)[order]
    stats = FmllrStats.zeros(3, D).accumulate(x, pdf, spk, gmm, gauss=gauss, chunk=1000)
    W, hist = estimate_fmllr(stats)
    assert W.shape == (3, D, D + 1) and hist.shape == (41, 3)
    for s in range(2):
        W_one, _, _ = _estimate(xs[s], pdfs[s], gs[s], gmm)
        np.testing.assert_allclose(W[s].numpy(), W_one, atol=1e-9)
    assert torch.equal(W[2], torch.eye(D, D + 1, dtype=torch.float64))
    # Per-speaker application: speaker s's frames through W[s].
    y = apply_fmllr(W, x, spk)
    for s in range(3):
        sel = spk == s
        torch.testing.assert_close(y[sel], apply_fmllr(W[s], x[sel]))


def test_fmllr_stats_match_definition():
    rng = np.random.default_rng(3)
    gmm = _gmm(rng, p=3, m=2)
    n = 30
    x = torch.from_numpy(rng.normal(size=(n, D)))
    pdf = torch.from_numpy(rng.integers(0, 3, size=n))
    spk = torch.from_numpy(rng.integers(0, 2, size=n))
    w = torch.from_numpy(rng.uniform(0, 1, size=n))
    stats = FmllrStats.zeros(2, D).accumulate(x, pdf, spk, gmm, weights=w, chunk=8)
    post = gauss_posteriors(gmm, x, pdf)
    beta, K, G = np.zeros(2), np.zeros((2, D, D + 1)), np.zeros((2, D, D + 1, D + 1))
    for t in range(n):
        xi = np.append(x[t].numpy(), 1.0)
        s = int(spk[t])
        for k in range(2):
            g = float(post[t, k] * w[t])
            mu, var = gmm.means[pdf[t], k].numpy(), gmm.variances[pdf[t], k].numpy()
            beta[s] += g
            K[s] += g * np.outer(mu / var, xi)
            for i in range(D):
                G[s, i] += g / var[i] * np.outer(xi, xi)
    np.testing.assert_allclose(stats.beta.numpy(), beta, rtol=1e-12)
    np.testing.assert_allclose(stats.K.numpy(), K, rtol=1e-10)
    np.testing.assert_allclose(stats.G.numpy(), G, rtol=1e-10)
    # The auxf is the weighted log-likelihood of the transformed frames plus the Jacobian, up to
    # a W-independent constant: compare two random transforms both ways.
    def rand_w():
        return np.concatenate([np.eye(D) + 0.1 * rng.normal(size=(D, D)),
                               rng.normal(size=(D, 1))], 1)

    shared = torch.from_numpy(rand_w())[None].expand(2, D, D + 1)
    per_spk = torch.from_numpy(np.stack([rand_w(), rand_w()]))
    lls = []
    for Wc in (shared, per_spk):
        y = apply_fmllr(Wc, x, spk)
        ll = gmm.component_log_likelihoods(y, pdf)  # [n, M]: log w_m N(y; mu_m, sigma_m)
        ll = ((post * ll).sum(1) * w).double()  # posteriors held fixed, as in the auxf
        jac = torch.linalg.slogdet(Wc[:, :, :D])[1][spk] * w
        tot = torch.zeros(2, dtype=torch.float64).index_add_(0, spk, ll + jac)
        lls.append(tot - fmllr_auxf(Wc, stats))
    torch.testing.assert_close(lls[0], lls[1], rtol=0, atol=1e-9)


def test_apply_fmllr_needs_speakers_for_batched_transforms():
    with pytest.raises(ValueError):
        apply_fmllr(torch.eye(D, D + 1)[None], torch.zeros(3, D))
