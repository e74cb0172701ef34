"""Per-speaker fMLLR (constrained MLLR) for diagonal GMMs, the math of Kaldi's train_sat.sh.

A speaker's transform W = [A b] [D, D+1] maps its features to the model's space, y = A x + b,
and is chosen to maximise the likelihood of y under the GMM plus the Jacobian log|det A| (Gales
1998, "Maximum likelihood linear transformations for HMM-based speech recognition"). Kaldi's
FmllrDiagGmmAccs / ComputeFmllrMatrixDiagGmmFull, batched over speakers in torch:

    beta = sum_t gamma_t,  K = sum_t gamma_t Sigma^{-1} mu xi_t^T  [D, D+1],
    G_i = sum_t gamma_t / sigma^2_i xi_t xi_t^T  [D+1, D+1],  xi = [x; 1],
    Q(W) = beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)

(gamma over the frame's Gaussians, mu and sigma^2 theirs). Q is maximised row by row from the
identity; each row update is the exact maximiser given the others, so Q never decreases.
train_sat.sh gets the Gaussian posteriors from the alignment with silence weighted to 0 (pass
`weights`), and the features are the LDA+MLLT ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.lda_mllt import gauss_posteriors

log = logging.getLogger(__name__)

F64 = torch.float64


@dataclass
class FmllrStats:
    """Sufficient statistics of S speakers (Kaldi's FmllrDiagGmmAccs, one per speaker)."""

    beta: torch.Tensor  # [S]
    K: torch.Tensor  # [S, D, D+1]
    G: torch.Tensor  # [S, D, D+1, D+1]: G[s, i] is speaker s's G_i

    @classmethod
    def zeros(cls, num_spk: int, dim: int, device=None) -> FmllrStats:
        return cls(torch.zeros(num_spk, dtype=F64, device=device),
                   torch.zeros(num_spk, dim, dim + 1, dtype=F64, device=device),
                   torch.zeros(num_spk, dim, dim + 1, dim + 1, dtype=F64, device=device))

    def accumulate(self, x: torch.Tensor, pdf: torch.Tensor, spk: torch.Tensor, gmm: DiagGmm,
                   post: torch.Tensor | None = None, gauss: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None, chunk: int = 4096) -> FmllrStats:
        """Add frames x [N, D] (the features the transform will apply to) aligned to pdfs [N] of
        speakers spk [N] (indices into this batch). Gaussian posteriors within the pdf are
        `post` [N, M] if given, else from `gauss_posteriors(gmm, x, pdf, gauss)`: pass `post`
        computed on the adapted features when a transform is already in place. Returns self."""
        dev = self.K.device
        d = self.K.shape[1]
        pdf, spk = pdf.to(dev).long(), spk.to(dev).long()
        if post is None:
            post = gauss_posteriors(gmm.to(dev), x.to(dev), pdf, gauss)
        post = post.to(device=dev, dtype=F64)
        if weights is not None:
            post = post * weights.to(device=dev, dtype=F64)[:, None]
        inv_var = 1.0 / gmm.variances.to(dev, F64)  # [P, M, D]
        mu_iv = gmm.means.to(dev, F64) * inv_var
        xd = x.to(dev, F64)
        for xc, pc, sc, gc in zip(xd.split(chunk), pdf.split(chunk), spk.split(chunk),
                                  post.split(chunk)):
            xi = torch.cat([xc, torch.ones(len(xc), 1, dtype=F64, device=dev)], 1)  # [n, D+1]
            u = torch.einsum("nm,nmd->nd", gc, mu_iv[pc])  # sum_m gamma mu / sigma^2
            v = torch.einsum("nm,nmd->nd", gc, inv_var[pc])  # sum_m gamma / sigma^2
            self.beta.index_add_(0, sc, gc.sum(1))
            self.K.index_add_(0, sc, u[:, :, None] * xi[:, None, :])
            xixi = (xi[:, :, None] * xi[:, None, :]).reshape(len(xi), -1)  # [n, (D+1)^2]
            for s in sc.unique().tolist():  # one GEMM per speaker in the chunk
                sel = sc == s
                self.G[s] += (v[sel].T @ xixi[sel]).reshape(d, d + 1, d + 1)
        return self


def fmllr_auxf(W: torch.Tensor, stats: FmllrStats) -> torch.Tensor:
    """Q(W) per speaker [S] for W [S, D, D+1]: beta log|det A| + tr(W K^T)
    - 1/2 sum_i w_i G_i w_i^T, the speaker's log-likelihood gain up to a constant."""
    W = W.to(stats.K.device, F64)
    d = W.shape[1]
    logdet = torch.linalg.slogdet(W[:, :, :d])[1]
    lin = (W * stats.K).sum((1, 2))
    quad = torch.einsum("sij,sijk,sik->s", W, stats.G, W)
    return stats.beta * logdet + lin - 0.5 * quad


def estimate_fmllr(stats: FmllrStats, num_iters: int = 40, min_count: float = 20.0,
                   init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi's ComputeFmllrMatrixDiagGmmFull (fmllr-update-type full) for all speakers at once.

    Row i: p = [c_i, 0] with c_i row i of A^{-T} (a multiple of the cofactor row), then
    w_i = (alpha p + k_i) G_i^{-1} where alpha solves e1 alpha^2 + e2 alpha - beta = 0,
    e1 = p G_i^{-1} p^T, e2 = p G_i^{-1} k_i^T; of the two roots the one with the higher
    beta log|alpha e1 + e2| - 1/2 alpha^2 e1 (Gales 1998, Appendix). Kaldi's defaults: 40
    passes; speakers with beta < min_count keep the identity (G_i would be near singular).
    Returns W [S, D, D+1] and the auxf [num_iters + 1, S], before and after each pass.
    """
    s, d = stats.K.shape[:2]
    dev = stats.K.device
    eye = torch.eye(d, d + 1, dtype=F64, device=dev).expand(s, d, d + 1)
    ok = stats.beta >= min_count  # [S]
    if not bool(ok.all()):
        log.warning("fMLLR: %d of %d speakers under %.0f frames keep the identity",
                    int((~ok).sum()), s, min_count)
    W = (eye if init is None else init.to(dev, F64)).clone()
    W[~ok] = eye[~ok]
    # Speakers left out get G_i = I, beta = 0, K = 0 so the solve stays finite; masked below.
    g = torch.where(ok[:, None, None, None], stats.G,
                    torch.eye(d + 1, dtype=F64, device=dev).expand_as(stats.G))
    ginv = torch.linalg.inv(g)  # [S, D, D+1, D+1]
    beta = torch.where(ok, stats.beta, torch.ones_like(stats.beta))
    k = torch.where(ok[:, None, None], stats.K, eye)
    history = [fmllr_auxf(W, stats)]
    zero = torch.zeros(s, 1, dtype=F64, device=dev)
    for _ in range(num_iters):
        for i in range(d):
            c = torch.linalg.inv(W[:, :, :d])[:, :, i]  # [S, D]: row i of A^{-T}
            p = torch.cat([c, zero], 1)  # [S, D+1]
            gp = torch.einsum("sjk,sk->sj", ginv[:, i], p)
            gk = torch.einsum("sjk,sk->sj", ginv[:, i], k[:, i])
            e1 = (p * gp).sum(1)
            e2 = (p * gk).sum(1)
            disc = torch.sqrt(e2 * e2 + 4 * e1 * beta)
            roots = torch.stack([(-e2 + disc) / (2 * e1), (-e2 - disc) / (2 * e1)])  # [2, S]
            aux = beta * torch.log(torch.abs(roots * e1 + e2)) - 0.5 * roots ** 2 * e1
            alpha = torch.where(aux[0] >= aux[1], roots[0], roots[1])
            row = alpha[:, None] * gp + gk
            W[:, i] = torch.where(ok[:, None], row, W[:, i])
        history.append(fmllr_auxf(W, stats))
    hist = torch.stack(history)  # [num_iters + 1, S]
    gain = (hist[-1] - hist[0])[ok].sum() / stats.beta[ok].sum().clamp_min(1e-10)
    log.info("fMLLR auxf gain %.4g per frame over %d speakers", float(gain), int(ok.sum()))
    return W, hist


def apply_fmllr(W: torch.Tensor, x: torch.Tensor, spk: torch.Tensor | None = None) -> torch.Tensor:
    """y = A x + b (transform-feats with a [D, D+1] matrix). W [D, D+1] for all frames, or
    W [S, D, D+1] with spk [N] naming each frame's speaker. Computed in x's dtype."""
    d = x.shape[-1]
    W = W.to(x.device, x.dtype)
    if W.dim() == 2:
        return x @ W[:, :d].T + W[:, d]
    if spk is None:
        raise ValueError("per-speaker transforms need spk ids")
    spk = spk.to(x.device).long()
    y = torch.empty_like(x)
    for s in spk.unique().tolist():
        sel = spk == s
        y[sel] = x[sel] @ W[s, :, :d].T + W[s, :, d]
    return y
