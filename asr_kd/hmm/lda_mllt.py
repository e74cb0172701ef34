"""LDA and MLLT feature transforms for tri2, the math of Kaldi's steps/train_lda_mllt.sh in torch.

tri2 splices +-3 frames of the base features and projects them to 40 dims with LDA over the tri1
tree's pdfs (Kaldi's acc-lda + est-lda), then estimates MLLT, one global semi-tied covariance
transform (Gales 1999), over several passes with the GMM re-estimated in between (gmm-acc-mllt +
est-mllt). Each MLLT matrix A is estimated in the space of the current features, starting from the
identity; the caller composes it onto the LDA matrix (compose-transforms: A @ lda) and rotates the
model's means by it (gmm-transform-means: mu <- A mu). Matrices are saved as Kaldi binary matrices
so that Kaldi's transform-feats reads them.

All statistics and solves are float64 (Kaldi accumulates in double too): spliced features are
strongly correlated and the within-class scatter is ill-conditioned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.utils.io import atomic_path

log = logging.getLogger(__name__)

F64 = torch.float64


# ----------------------------------------------------------------------------- LDA


@dataclass
class ClassStats:
    """What LDA needs, Kaldi's LdaEstimate: per-class counts and sums and the total scatter.

    Stats of several `accumulate` calls (utterances, jobs) add up; `add` merges two objects.
    """

    count: torch.Tensor  # [P]     sum_t w_t [class_t == c]
    first: torch.Tensor  # [P, D]  sum_t w_t [class_t == c] x_t
    second: torch.Tensor  # [D, D] sum_t w_t x_t x_t^T (all classes together)

    @classmethod
    def zeros(cls, num_classes: int, dim: int, device=None) -> ClassStats:
        return cls(torch.zeros(num_classes, dtype=F64, device=device),
                   torch.zeros(num_classes, dim, dtype=F64, device=device),
                   torch.zeros(dim, dim, dtype=F64, device=device))

    def accumulate(self, x: torch.Tensor, pdfs: torch.Tensor,
                   weights: torch.Tensor | None = None) -> ClassStats:
        """Add frames x [N, D] with class ids [N] (and optional weights [N], e.g. posteriors
        or a silence weight, as acc-lda takes). Returns self."""
        xd = x.to(device=self.count.device, dtype=F64)
        pdfs = pdfs.to(self.count.device).long()
        w = (torch.ones(len(xd), dtype=F64, device=xd.device) if weights is None
             else weights.to(device=xd.device, dtype=F64))
        self.count.index_add_(0, pdfs, w)
        self.first.index_add_(0, pdfs, xd * w[:, None])
        self.second += (xd * w[:, None]).T @ xd
        return self

    def add(self, other: ClassStats) -> ClassStats:
        self.count += other.count
        self.first += other.first
        self.second += other.second
        return self

    def covariances(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total mean [D], between-class covariance B [D, D], within-class covariance W
        [D, D]), both covariances normalised by the total count as in est-lda:
        B = sum_c n_c/n (mu_c - mu)(mu_c - mu)^T, W = T - B with T the total covariance."""
        n = self.count.sum()
        mean = self.first.sum(0) / n
        total = self.second / n - torch.outer(mean, mean)
        seen = self.count > 0  # an empty class has no mean (est-lda would produce NaN)
        cmean = self.first[seen] / self.count[seen, None]  # [C, D]
        between = (cmean.T * (self.count[seen] / n)) @ cmean - torch.outer(mean, mean)
        within = total - between
        return mean, 0.5 * (between + between.T), 0.5 * (within + within.T)


def lda_full(stats: ClassStats, within_floor: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """The full [D, D] LDA matrix (rows by decreasing eigenvalue) and its eigenvalues [D].

    Rows v solve B v = lambda W v and are scaled so that v W v^T = 1: the projected within-class
    covariance is the identity and the projected between-class (hence total) covariance is
    diag(lambda), as est-lda leaves them. est-lda whitens W by its Cholesky factor; we whiten
    by its eigendecomposition so that eigenvalues of W below `within_floor` x the largest can
    be floored (directions with no within-class variance, e.g. a constant feature, would
    otherwise get infinite weight). Any whitening gives the same rows up to sign when the
    eigenvalues are distinct; the sign of each row is fixed so its largest entry is positive.
    """
    _, between, within = stats.covariances()
    e, u = torch.linalg.eigh(within)
    e = e.clamp_min(within_floor * float(e.max()))
    c = u.T / e.sqrt()[:, None]  # [D, D] whitening: c W c^T = I
    lam, v = torch.linalg.eigh(c @ between @ c.T)  # ascending
    lam, v = lam.flip(0), v.flip(1)
    full = v.T @ c  # [D, D]
    sign = torch.sign(full.gather(1, full.abs().argmax(1, keepdim=True)))
    return full * sign, lam


def estimate_lda(stats: ClassStats, dim: int, within_floor: float = 1e-10,
                 remove_offset: bool = False) -> torch.Tensor:
    """Kaldi's est-lda: the top `dim` rows of `lda_full`, a [dim, D] float64 matrix applied to
    the spliced features (y = M x, what transform-feats does with a [dim, D] matrix).

    With `remove_offset` (est-lda --remove-offset), a [dim, D+1] matrix [M, -M mu] whose output
    has zero mean over the training data. train_lda_mllt.sh uses neither; the default matches it.
    Kaldi refuses dim >= number of classes; here the surplus rows (between-class eigenvalue 0,
    still within-whitened) are kept with a warning, so that tiny recipes can keep 40 dims.
    """
    d = stats.second.shape[0]
    if not 0 < dim <= d:
        raise ValueError(f"LDA dim {dim} must be in 1..{d}")
    classes = int((stats.count > 0).sum())
    if dim >= classes:
        log.warning("LDA dim %d >= %d seen classes: %d directions carry no class information",
                    dim, classes, dim - classes + 1)
    full, lam = lda_full(stats, within_floor)
    log.info("LDA eigenvalues: kept sum %.4g of %.4g", float(lam[:dim].sum()), float(lam.sum()))
    m = full[:dim]
    if remove_offset:
        mean = stats.first.sum(0) / stats.count.sum()
        m = torch.cat([m, -(m @ mean)[:, None]], dim=1)
    return m


def frame_batches(utts: list[str], lengths: Mapping[str, int],
                  max_frames: int) -> Iterator[list[str]]:
    """Consecutive groups of utterances of at most `max_frames` frames (at least one each):
    the statistics of tri2 and tri3 are accumulated a batch at a time to bound memory."""
    batch, frames = [], 0
    for u in utts:
        if batch and frames + lengths[u] > max_frames:
            yield batch
            batch, frames = [], 0
        batch.append(u)
        frames += lengths[u]
    if batch:
        yield batch


# ----------------------------------------------------------------------------- posteriors


def gauss_posteriors(gmm: DiagGmm, x: torch.Tensor, pdf: torch.Tensor,
                     gauss: torch.Tensor | None = None, chunk: int = 8192) -> torch.Tensor:
    """Posteriors [N, M] (float64) of each frame's own pdf's Gaussians: one-hot on `gauss` [N]
    when the alignment names the Gaussian, all ones for single-Gaussian pdfs, else computed from
    x (Kaldi's gmm-acc-mllt and gmm-post-to-gpost do the latter)."""
    m = gmm.means.shape[1]
    pdf = pdf.to(gmm.means.device).long()
    if gauss is not None:
        return torch.nn.functional.one_hot(gauss.to(pdf.device).long(), m).to(F64)
    if m == 1:
        return torch.ones(len(pdf), 1, dtype=F64, device=pdf.device)
    xg = x.to(device=gmm.means.device, dtype=gmm.means.dtype)
    out = [torch.softmax(gmm.component_log_likelihoods(xc, pc).double(), dim=-1)
           for xc, pc in zip(xg.split(chunk), pdf.split(chunk))]
    return torch.cat(out) if out else torch.zeros(0, m, dtype=F64, device=pdf.device)


# ----------------------------------------------------------------------------- MLLT


@dataclass
class MlltStats:
    """Kaldi's MlltAccs: beta = total occupancy and, per dimension i,
    G_i = sum_{t,j} gamma_tj / sigma^2_{j,i} (x_t - mu_j)(x_t - mu_j)^T  over Gaussians j,
    with means and variances of the current diagonal GMM (in the current feature space)."""

    beta: torch.Tensor  # [] float64
    G: torch.Tensor  # [D, D, D]: G[i] is G_i

    @classmethod
    def zeros(cls, dim: int, device=None) -> MlltStats:
        return cls(torch.zeros((), dtype=F64, device=device),
                   torch.zeros(dim, dim, dim, dtype=F64, device=device))

    def accumulate(self, x: torch.Tensor, pdf: torch.Tensor, gmm: DiagGmm,
                   post: torch.Tensor | None = None, gauss: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None, prune: float = 1e-4,
                   chunk: int = 2048) -> MlltStats:
        """Add frames x [N, D] aligned to pdfs [N]. Gaussian posteriors within the pdf are `post`
        [N, M] if given, else from `gauss_posteriors(gmm, x, pdf, gauss)`; `weights` [N] scale
        whole frames. Posteriors below `prune` are dropped (Kaldi prunes randomly, --rand-prune)
        so that the D^3-per-pair work stays near one pair per frame. Returns self."""
        dev = self.G.device
        d = self.G.shape[0]
        pdf = pdf.to(dev).long()
        if post is None:
            post = gauss_posteriors(gmm.to(dev), x.to(dev), pdf, gauss)
        post = post.to(device=dev, dtype=F64)
        if weights is not None:
            post = post * weights.to(device=dev, dtype=F64)[:, None]
        mu, var = gmm.means.to(dev, F64), gmm.variances.to(dev, F64)  # [P, M, D]
        xd = x.to(dev, F64)
        for xc, pc, gc in zip(xd.split(chunk), pdf.split(chunk), post.split(chunk)):
            t, k = torch.nonzero(gc >= prune, as_tuple=True)  # kept (frame, Gaussian) pairs
            g = gc[t, k]  # [R]
            diff = xc[t] - mu[pc[t], k]  # [R, D]
            w = g[:, None] / var[pc[t], k]  # [R, D]: gamma / sigma^2_i
            outer = (diff[:, :, None] * diff[:, None, :]).reshape(len(g), d * d)
            self.G += (w.T @ outer).reshape(d, d, d)  # one GEMM: sum_r w_ri diff diff^T
            self.beta += g.sum()
        return self

    def add(self, other: MlltStats) -> MlltStats:
        self.beta += other.beta
        self.G += other.G
        return self


def mllt_objective(A: torch.Tensor, stats: MlltStats) -> float:
    """est-mllt's auxiliary function beta log|det A| - 1/2 sum_i a_i G_i a_i^T: the
    log-likelihood of the data under the semi-tied model (variances held fixed), up to a
    constant. est-mllt logs its increase per frame."""
    A = A.to(stats.G.device, F64)
    quad = torch.einsum("ij,ijk,ik->", A, stats.G, A)
    return float(stats.beta * torch.linalg.slogdet(A)[1] - 0.5 * quad)


def estimate_mllt(stats: MlltStats, num_iters: int = 200, init: torch.Tensor | None = None,
                  tol: float = 1e-12) -> tuple[torch.Tensor, list[float]]:
    """MLLT / semi-tied covariance update (Gales 1999, eq. 22; Kaldi's MlltAccs::Update).

    Row by row: with c_i the i-th cofactor row of A (any multiple of it; we use row i of
    A^{-T}), a_i = c_i G_i^{-1} sqrt(beta / (c_i G_i^{-1} c_i^T)), the exact maximiser of the
    objective over row i with the others fixed, so the objective never decreases. Kaldi runs
    200 passes from the identity; we stop early once a pass gains less than `tol` per frame.
    Returns A [D, D] (float64) and the objective before the first pass and after each pass.
    """
    d = stats.G.shape[0]
    beta = float(stats.beta)
    if beta < 10 * d:
        log.warning("MLLT update from only %.1f frames for %d dims", beta, d)
    A = (torch.eye(d, dtype=F64, device=stats.G.device) if init is None
         else init.to(stats.G.device, F64).clone())
    ginv = torch.linalg.inv(stats.G)  # [D, D, D]
    history = [mllt_objective(A, stats)]
    for _ in range(num_iters):
        for i in range(d):
            c = torch.linalg.inv(A)[:, i]  # row i of A^{-T}
            gc = ginv[i] @ c
            A[i] = gc * torch.sqrt(beta / (c @ gc))
        history.append(mllt_objective(A, stats))
        if history[-1] - history[-2] < tol * beta:
            break
    log.info("MLLT objective improvement %.6g per frame over %.0f frames",
             (history[-1] - history[0]) / max(beta, 1e-10), beta)
    return A, history


# ----------------------------------------------------------------------------- Kaldi matrices


def write_kaldi_matrix(path: str | os.PathLike, m, double: bool = False) -> None:
    """Write a matrix in Kaldi's binary format ("\\0BFM " float, or "DM " double), atomically.
    Kaldi's est-lda and est-mllt write float matrices; transform-feats reads either."""
    if isinstance(m, torch.Tensor):
        m = m.detach().cpu().numpy()
    arr = np.ascontiguousarray(m, dtype=np.float64 if double else np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {arr.shape}")
    with atomic_path(path) as tmp:
        kaldiio.save_mat(str(tmp), arr)


def read_kaldi_matrix(path: str | os.PathLike) -> torch.Tensor:
    """Read a Kaldi matrix, binary or text (" [ 1 2\n 3 4 ]"), as a float64 tensor. Text is
    parsed here: kaldiio guesses the dtype from the first number and fails on "1 2.5"."""
    with open(path, "rb") as f:
        binary = f.read(2) == b"\0B"
    if binary:
        return torch.from_numpy(np.array(kaldiio.load_mat(str(path)), dtype=np.float64))
    body = Path(path).read_text().strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError(f"{path}: not a Kaldi matrix")
    rows = [r.split() for r in body[1:-1].strip().splitlines() if r.strip()]
    if not rows:
        return torch.zeros(0, 0, dtype=F64)
    return torch.tensor([[float(v) for v in r] for r in rows], dtype=F64).reshape(len(rows), -1)
