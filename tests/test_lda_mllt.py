"""LDA and MLLT (asr_kd.hmm.lda_mllt) on small synthetic Gaussian classes: LDA against scipy's
generalized symmetric eigensolver, MLLT's objective against the data log-likelihood and its
effect on per-class correlations, and Kaldi-format matrix files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.lda_mllt import (
    ClassStats,
    MlltStats,
    estimate_lda,
    estimate_mllt,
    gauss_posteriors,
    lda_full,
    mllt_objective,
    read_kaldi_matrix,
    write_kaldi_matrix,
)


def _classes(seed: int, d: int = 6, p: int = 5):
    """Classes sharing one random full within-class covariance, with distinct means and
    unequal counts: the setting where LDA is the ML projection."""
    rng = np.random.default_rng(seed)
    chol = rng.normal(size=(d, d)) + 2 * np.eye(d)
    means = 3 * rng.normal(size=(p, d))
    counts = rng.integers(300, 800, size=p)
    pdf = np.repeat(np.arange(p), counts)
    x = means[pdf] + rng.normal(size=(len(pdf), d)) @ chol.T
    return x, pdf


def _scatter_by_loop(x: np.ndarray, pdf: np.ndarray):
    """Between and within covariances straight from the definition, one class at a time."""
    n, d = x.shape
    mu = x.mean(0)
    b, w = np.zeros((d, d)), np.zeros((d, d))
    for c in np.unique(pdf):
        xc = x[pdf == c]
        mc = xc.mean(0)
        b += len(xc) / n * np.outer(mc - mu, mc - mu)
        w += (xc - mc).T @ (xc - mc) / n
    return b, w


def test_lda_matches_scipy_generalized_eigh():
    x, pdf = _classes(0)
    stats = ClassStats.zeros(5, 6)
    half = len(x) // 2  # two calls must add up to the same stats as one
    stats.accumulate(torch.from_numpy(x[:half]).float(), torch.from_numpy(pdf[:half]))
    stats.accumulate(torch.from_numpy(x[half:]).float(), torch.from_numpy(pdf[half:]))
    xf = torch.from_numpy(x).float().double().numpy()  # the same float32-rounded frames
    b, w = _scatter_by_loop(xf, pdf)

    lam, v = scipy.linalg.eigh(b, w)  # ascending; v^T w v = I
    lam, v = lam[::-1], v[:, ::-1]
    dim = 3
    m = estimate_lda(stats, dim).numpy()
    assert m.shape == (dim, 6)
    # Eigenvalues: the projected between-class covariance is diag(lambda_top).
    proj_b = m @ b @ m.T
    np.testing.assert_allclose(np.diag(proj_b), lam[:dim], rtol=1e-6)
    np.testing.assert_allclose(proj_b - np.diag(np.diag(proj_b)), 0, atol=1e-6 * lam[0])
    # Within-class covariance projected to the identity (Kaldi's scaling).
    np.testing.assert_allclose(m @ w @ m.T, np.eye(dim), atol=1e-8)
    # Same directions: each row is scipy's W-normalised eigenvector up to sign.
    for r in range(dim):
        vr = v[:, r] * np.sign(v[:, r] @ m[r])
        np.testing.assert_allclose(m[r], vr, atol=1e-6 * np.abs(vr).max())
    # All D eigenvalues, the zero ones (rank of B is P-1 = 4) included.
    _, lam_all = lda_full(stats)
    np.testing.assert_allclose(lam_all.numpy(), lam, atol=1e-6 * lam[0])
    assert abs(lam[4]) < 1e-8 * lam[0] < lam[3]


def test_lda_offset_and_total_covariance_diagonal():
    x, pdf = _classes(1)
    xt = torch.from_numpy(x)
    stats = ClassStats.zeros(5, 6).accumulate(xt, torch.from_numpy(pdf))
    m = estimate_lda(stats, 4)
    mo = estimate_lda(stats, 4, remove_offset=True)
    assert mo.shape == (4, 7)
    torch.testing.assert_close(mo[:, :6], m)
    y = xt @ mo[:, :6].T + mo[:, 6]
    assert y.mean(0).abs().max() < 1e-9  # the offset centres the training data
    # Total covariance of the output = I + diag(lambda): diagonal, and above 1 on the diagonal.
    cov = torch.cov(y.T, correction=0)
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 1e-8
    assert (torch.diag(cov) > 1.0).all()
    assert (torch.diag(cov)[:-1] >= torch.diag(cov)[1:]).all()  # sorted by eigenvalue


def test_lda_constant_feature_is_floored_not_nan():
    """A dimension with no variance (e.g. a padded, constant feature) makes W singular; the
    floor keeps the transform finite and the informative directions as without it."""
    x, pdf = _classes(2)
    xc = np.concatenate([x, np.full((len(x), 1), 3.0)], 1)
    s0 = ClassStats.zeros(5, 6).accumulate(torch.from_numpy(x), torch.from_numpy(pdf))
    s1 = ClassStats.zeros(5, 7).accumulate(torch.from_numpy(xc), torch.from_numpy(pdf))
    m0, m1 = estimate_lda(s0, 3), estimate_lda(s1, 3)
    assert torch.isfinite(m1).all()
    torch.testing.assert_close(m1[:, :6], m0, atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- MLLT


def _rotated_classes(seed: int, d: int = 4, p: int = 6, n: int = 1500):
    """Classes whose covariances are diagonal in one shared rotated basis R: Sigma_j =
    R^T diag(s_j) R, the semi-tied model that MLLT fits."""
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.exp(rng.uniform(-1.5, 1.5, size=(p, d)))  # different per class and dim
    means = 2 * rng.normal(size=(p, d))
    pdf = np.repeat(np.arange(p), n)
    z = rng.normal(size=(len(pdf), d)) * np.sqrt(scales[pdf])
    return means[pdf] + z @ rot, pdf, rot


def _diag_gmm(x: np.ndarray, pdf: np.ndarray, p: int) -> DiagGmm:
    """One ML diagonal Gaussian per class, as the GMM re-estimation between MLLT passes."""
    mu = np.stack([x[pdf == c].mean(0) for c in range(p)])
    var = np.stack([x[pdf == c].var(0) for c in range(p)])
    return DiagGmm(torch.from_numpy(mu)[:, None], torch.from_numpy(var)[:, None],
                   torch.zeros(p, 1, dtype=torch.float64))


def _offdiag(x: np.ndarray, pdf: np.ndarray) -> float:
    """Mean over classes of the squared off-diagonal correlations: 0 when every class's
    covariance is diagonal."""
    tot = 0.0
    for c in np.unique(pdf):
        r = np.corrcoef(x[pdf == c].T)
        tot += ((r - np.diag(np.diag(r))) ** 2).sum()
    return tot / len(np.unique(pdf))


def _semitied_loglik(A: np.ndarray, x: np.ndarray, pdf: np.ndarray, gmm: DiagGmm) -> float:
    """sum_t log|det A| + log N(A x_t; A mu_j, diag sigma^2_j), the GMM's variances fixed."""
    mu, var = gmm.means[:, 0].numpy(), gmm.variances[:, 0].numpy()
    r = (x - mu[pdf]) @ A.T
    ll = -0.5 * (r ** 2 / var[pdf] + np.log(2 * math.pi * var[pdf])).sum(1)
    return float(ll.sum() + len(x) * np.linalg.slogdet(A)[1])


def test_mllt_objective_rises_every_pass_and_equals_loglik_gain():
    x, pdf, _ = _rotated_classes(0)
    gmm = _diag_gmm(x, pdf, 6)
    stats = MlltStats.zeros(4).accumulate(torch.from_numpy(x), torch.from_numpy(pdf), gmm)
    assert float(stats.beta) == len(x)
    A, hist = estimate_mllt(stats)
    diffs = np.diff(hist)
    converged = np.abs(diffs) < 1e-9 * len(x)
    assert ((diffs > 0) | converged).all(), diffs  # strictly up until it stops moving
    assert diffs[0] > 0 and not converged[0]
    assert len(hist) > 3  # more than one pass was needed: the row updates interact
    # The objective is the semi-tied log-likelihood up to a constant (checked from raw frames).
    gain = _semitied_loglik(A.numpy(), x, pdf, gmm) - _semitied_loglik(np.eye(4), x, pdf, gmm)
    assert gain == pytest.approx(hist[-1] - hist[0], rel=1e-8)
    assert gain > 0.05 * len(x)
    assert mllt_objective(A, stats) == pytest.approx(hist[-1])


def test_mllt_passes_diagonalise_class_covariances():
    """Kaldi's loop: accumulate with the current GMM, update, compose, re-estimate the GMM.
    Per-class correlations must fall far below the identity's, and the data likelihood of the
    re-estimated model (with the Jacobian of the composed transform) must rise every pass."""
    x, pdf, rot = _rotated_classes(1)
    total = np.eye(4)
    before = _offdiag(x, pdf)
    lls = []
    for _ in range(3):  # the third pass gains ~1e-8 relative: converged
        y = x @ total.T
        gmm = _diag_gmm(y, pdf, 6)
        lls.append(_semitied_loglik(total, x, pdf, DiagGmm(
            torch.from_numpy(gmm.means.numpy() @ np.linalg.inv(total).T), gmm.variances,
            gmm.log_weights)))
        stats = MlltStats.zeros(4).accumulate(torch.from_numpy(y), torch.from_numpy(pdf), gmm)
        A, _ = estimate_mllt(stats)
        total = A.numpy() @ total
    after = _offdiag(x @ total.T, pdf)
    assert before > 0.2  # the rotation does correlate the raw dims
    assert after < 0.02 * before, (before, after)
    assert all(b > a for a, b in zip(lls, lls[1:])), lls
    # The rows of the transform span the true basis: each is close to one of R's rows.
    t = total / np.linalg.norm(total, axis=1, keepdims=True)
    assert np.abs(t @ rot.T).max(1).min() > 0.99


def test_mllt_stats_with_soft_posteriors_match_definition():
    rng = np.random.default_rng(3)
    p, m, d, n = 3, 2, 3, 40
    gmm = DiagGmm(torch.from_numpy(rng.normal(size=(p, m, d))),
                  torch.from_numpy(rng.uniform(0.5, 2, size=(p, m, d))),
                  torch.log(torch.full((p, m), 0.5, dtype=torch.float64)))
    x = torch.from_numpy(rng.normal(size=(n, d)))
    pdf = torch.from_numpy(rng.integers(0, p, size=n))
    w = torch.from_numpy(rng.uniform(0, 1, size=n))
    stats = MlltStats.zeros(d).accumulate(x, pdf, gmm, weights=w, prune=0.0, chunk=7)
    post = gauss_posteriors(gmm, x, pdf)
    torch.testing.assert_close(post.sum(1), torch.ones(n, dtype=torch.float64))
    ref_g, ref_b = np.zeros((d, d, d)), 0.0
    for t in range(n):
        for k in range(m):
            g = float(post[t, k] * w[t])
            diff = (x[t] - gmm.means[pdf[t], k]).numpy()
            for i in range(d):
                ref_g[i] += g / float(gmm.variances[pdf[t], k, i]) * np.outer(diff, diff)
            ref_b += g
    np.testing.assert_allclose(stats.G.numpy(), ref_g, rtol=1e-10)
    assert float(stats.beta) == pytest.approx(ref_b, rel=1e-12)
    # One-hot Gaussian ids count each frame once, on its named Gaussian.
    hard = MlltStats.zeros(d).accumulate(x, pdf, gmm, gauss=torch.zeros(n, dtype=torch.long))
    assert float(hard.beta) == n


# ----------------------------------------------------------------------------- files


def test_kaldi_matrix_roundtrip(tmp_path):
    m = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 5)))
    write_kaldi_matrix(tmp_path / "lda.mat", m)
    raw = (tmp_path / "lda.mat").read_bytes()
    assert raw.startswith(b"\0BFM ")  # Kaldi binary float matrix, what est-lda writes
    assert len(raw) == 5 + 2 * 5 + 15 * 4  # header, two sized int32 dims, the floats
    torch.testing.assert_close(read_kaldi_matrix(tmp_path / "lda.mat"), m.float().double())
    write_kaldi_matrix(tmp_path / "d.mat", m, double=True)
    assert (tmp_path / "d.mat").read_bytes().startswith(b"\0BDM ")
    assert torch.equal(read_kaldi_matrix(tmp_path / "d.mat"), m)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["d.mat", "lda.mat"]  # no temp left
    (tmp_path / "t.mat").write_text(" [ 1 2.5\n 3 4 ]\n")
    assert read_kaldi_matrix(tmp_path / "t.mat").tolist() == [[1, 2.5], [3, 4]]
    with pytest.raises(ValueError):
        write_kaldi_matrix(tmp_path / "v.mat", torch.zeros(3))
