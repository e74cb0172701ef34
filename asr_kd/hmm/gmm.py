"""Diagonal-covariance GMMs for all pdfs at once, in torch (batched, CPU or GPU).

Parameters are padded to [P, M, D] (P pdfs, up to M Gaussians each); unused Gaussians have
log-weight -inf. Training is Viterbi-style like Kaldi's gmm-acc-stats-ali: each frame belongs to
its aligned pdf and is shared among that pdf's Gaussians by their posteriors.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from asr_kd.utils.sync_audit import sync_region

LOG_2PI = math.log(2 * math.pi)


class DiagGmm:
    def __init__(self, means: torch.Tensor, variances: torch.Tensor, log_weights: torch.Tensor):
        self.means = means  # [P, M, D]
        self.variances = variances  # [P, M, D]
        self.log_weights = log_weights  # [P, M]

    @classmethod
    def init_single(cls, num_pdfs: int, mean: torch.Tensor, var: torch.Tensor) -> DiagGmm:
        """Every pdf a single Gaussian at the global mean and variance (Kaldi's gmm-init-mono)."""
        d = mean.shape[0]
        return cls(mean.expand(num_pdfs, 1, d).clone(), var.expand(num_pdfs, 1, d).clone(),
                   torch.zeros(num_pdfs, 1, dtype=mean.dtype, device=mean.device))

    @property
    def num_pdfs(self) -> int:
        return self.means.shape[0]

    @property
    def num_gauss(self) -> int:
        return int(torch.isfinite(self.log_weights).sum())

    def to(self, device) -> DiagGmm:
        return DiagGmm(self.means.to(device), self.variances.to(device),
                       self.log_weights.to(device))

    def _gconsts(self) -> torch.Tensor:
        # log w - 0.5 (D log 2pi + sum log var + sum mu^2/var): the x-independent part, [P, M]
        d = self.means.shape[-1]
        return self.log_weights - 0.5 * (d * LOG_2PI + self.variances.log().sum(-1)
                                         + (self.means ** 2 / self.variances).sum(-1))

    def log_likelihoods(self, x: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
        """log p(x | pdf) for every frame and pdf: [N, D] -> [N, P], one matmul per chunk."""
        p, m, d = self.means.shape
        inv = 1.0 / self.variances
        w = torch.cat([-0.5 * inv, self.means * inv], dim=-1).reshape(p * m, 2 * d).T  # [2D, PM]
        g = self._gconsts().reshape(p * m)
        out = []
        for xc in x.split(chunk):
            feats = torch.cat([xc * xc, xc], dim=-1)  # [n, 2D]
            ll = (feats @ w + g).reshape(-1, p, m)
            out.append(torch.logsumexp(ll, dim=-1))
        return torch.cat(out) if out else x.new_zeros(0, p)

    def component_log_likelihoods(self, x: torch.Tensor, pdf: torch.Tensor) -> torch.Tensor:
        """log w_m p(x | pdf, m) of each frame's own pdf's Gaussians: [N, D], [N] -> [N, M]."""
        mu, var = self.means[pdf], self.variances[pdf]  # [N, M, D]
        return self._gconsts()[pdf] - 0.5 * ((x * x)[:, None] / var).sum(-1) + (
            x[:, None] * mu / var).sum(-1)

    def accumulate(self, x: torch.Tensor, pdf: torch.Tensor, chunk: int = 8192,
                   post_x: torch.Tensor | None = None):
        """Zeroth, first and second order statistics per Gaussian given aligned pdfs, and the
        total log-likelihood of the frames. With `post_x` [N, D] (the same frames in another
        feature space), the Gaussian posteriors and the log-likelihood are those of `post_x`
        and the statistics those of x (Kaldi's gmm-acc-stats-twofeats: SAT's final.alimdl)."""
        p, m, d = self.means.shape
        occ = torch.zeros(p * m, dtype=torch.float64, device=x.device)
        sx = torch.zeros(p * m, d, dtype=torch.float64, device=x.device)
        sxx = torch.zeros(p * m, d, dtype=torch.float64, device=x.device)
        total_ll = torch.zeros((), dtype=torch.float64, device=x.device)  # read once, at the end
        post_chunks = x.split(chunk) if post_x is None else post_x.split(chunk)
        for xc, pc, qc in zip(x.split(chunk), pdf.split(chunk), post_chunks):
            with sync_region("gmm accumulation chunk"):
                ll = self.component_log_likelihoods(qc, pc)  # [n, M]
                frame_ll = torch.logsumexp(ll, dim=-1, keepdim=True)
                total_ll += frame_ll.sum().double()
                post = (ll - frame_ll).exp().double()  # [n, M]
                idx = (pc[:, None] * m + torch.arange(m, device=x.device)).reshape(-1)  # [n*M]
                post_flat = post.reshape(-1)
                xd = xc.double()
                occ.index_add_(0, idx, post_flat)
                sx.index_add_(0, idx, (post[:, :, None] * xd[:, None]).reshape(-1, d))
                sxx.index_add_(0, idx, (post[:, :, None] * (xd * xd)[:, None]).reshape(-1, d))
        return occ.reshape(p, m), sx.reshape(p, m, d), sxx.reshape(p, m, d), float(total_ll)

    def update(self, occ, sx, sxx, min_gauss_occ: float = 10.0, var_floor: float = 1e-3,
               min_weight: float = 1e-5) -> None:
        """Maximum-likelihood update. Gaussians with too little data keep their mean and
        variance (Kaldi's MLE update refuses to estimate them from a handful of frames)."""
        valid = torch.isfinite(self.log_weights)
        pdf_occ = occ.sum(-1, keepdim=True)
        weights = torch.where(pdf_occ > 0, occ / pdf_occ.clamp_min(1e-10), self.log_weights.exp())
        weights = torch.where(valid, weights.clamp_min(min_weight), torch.zeros_like(weights))
        weights = weights / weights.sum(-1, keepdim=True)
        ok = (occ >= min_gauss_occ) & valid
        mean = sx / occ.clamp_min(1e-10)[..., None]
        var = (sxx / occ.clamp_min(1e-10)[..., None] - mean ** 2).clamp_min(var_floor)
        dt = self.means.dtype
        self.means = torch.where(ok[..., None], mean.to(dt), self.means)
        self.variances = torch.where(ok[..., None], var.to(dt), self.variances)
        self.log_weights = torch.where(valid, weights.to(dt).log(),
                                       torch.full_like(self.log_weights, -math.inf))

    def mix_up(self, target_total: int, pdf_occ: np.ndarray, power: float = 0.25,
               min_count: float = 20.0, perturb: float = 0.01, generator=None) -> None:
        """Split Gaussians towards `target_total` (Kaldi's gmm-mixup): each pdf's share is
        proportional to occupancy^power, and no Gaussian is left with fewer than `min_count`
        frames. Each split halves the heaviest Gaussian and moves the two means apart by
        +-perturb * stddev * randn."""
        targets = split_targets(pdf_occ, target_total, power, min_count)
        counts = torch.isfinite(self.log_weights).sum(-1).cpu().numpy()
        targets = np.maximum(targets, counts)
        new_m = int(targets.max())
        p, m, d = self.means.shape
        if new_m > m:  # widen the padded layout
            pad = new_m - m
            self.means = torch.cat([self.means, self.means.new_zeros(p, pad, d)], 1)
            self.variances = torch.cat([self.variances, self.variances.new_ones(p, pad, d)], 1)
            self.log_weights = torch.cat(
                [self.log_weights, self.log_weights.new_full((p, pad), -math.inf)], 1)
        for j in np.nonzero(targets > counts)[0]:
            for k in range(int(counts[j]), int(targets[j])):
                best = int(torch.argmax(self.log_weights[j, :k]))
                std = self.variances[j, best].sqrt()
                noise = torch.randn(d, generator=generator, dtype=std.dtype).to(std.device)
                shift = perturb * std * noise
                self.log_weights[j, best] -= math.log(2.0)
                self.log_weights[j, k] = self.log_weights[j, best]
                self.variances[j, k] = self.variances[j, best]
                self.means[j, k] = self.means[j, best] - shift
                self.means[j, best] = self.means[j, best] + shift

    def state_dict(self) -> dict:
        return {"means": self.means.cpu(), "variances": self.variances.cpu(),
                "log_weights": self.log_weights.cpu()}

    @classmethod
    def from_state_dict(cls, d: dict) -> DiagGmm:
        return cls(d["means"], d["variances"], d["log_weights"])


def split_targets(occ: np.ndarray, target_total: int, power: float, min_count: float) -> np.ndarray:
    """Gaussians per pdf: proportional to occ^power summing to about target_total, at least 1,
    and at most occ / min_count (Kaldi's GetSplitTargets)."""
    occ = np.asarray(occ, dtype=np.float64)
    share = np.power(np.maximum(occ, 0.0), power)
    if share.sum() <= 0:
        return np.ones(len(occ), dtype=np.int64)
    raw = share / share.sum() * target_total
    cap = np.maximum(1, np.floor(occ / min_count))
    return np.maximum(1, np.minimum(np.round(raw), cap)).astype(np.int64)
