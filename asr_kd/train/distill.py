"""Soft targets from an ensemble and the distillation loss (Hinton, Vinyals & Dean, 2015).

Soft targets at temperature T combine the members' distributions by the arithmetic mean of
softmax(z_e / T) (the paper's default) or the normalised geometric mean, which equals
softmax(mean_e z_e / T). They come from the teachers on the fly, or from a top-k cache computed
once (`asr_kd.train.soft_cache`): (ids, probabilities) per frame, renormalised over the k kept,
plus the mass the k held. With that mass the loss compares the two distributions over k + 1
bins (the k ids and "the rest"), so a flat, high-temperature target is not squeezed into its top
k, which teaches the student to starve every other pdf (docs/results/fsdd.md measures it).

Loss per frame: alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(hard), where the T^2 keeps the
soft term's gradient, which scales as 1/T^2, comparable across temperatures. `mode: mse` is the
high-temperature limit, logit matching: alpha * mean_i (z_i - v_i)^2 / 2 on zero-mean logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class DistillConfig:
    alpha: float = 0.0  # weight of the soft term; 0 trains on the hard targets only
    temperature: float = 1.0
    mode: str = "kl"  # kl | mse
    combine: str = "arithmetic"  # arithmetic | geometric
    source: str = "online"  # online (run the teachers each step) | topk (cache once)
    top_k: int = 20

    def __post_init__(self):
        checks = [(self.mode in ("kl", "mse"), "mode must be 'kl' or 'mse'"),
                  (self.combine in ("arithmetic", "geometric"),
                   "combine must be 'arithmetic' or 'geometric'"),
                  (self.source in ("online", "topk"), "source must be 'online' or 'topk'"),
                  (0.0 <= self.alpha <= 1.0, "alpha must be in [0, 1]"),
                  (self.temperature > 0, "temperature must be > 0"),
                  (self.top_k >= 1, "top_k must be >= 1"),
                  (not (self.mode == "mse" and self.source == "topk"),
                   "mode 'mse' matches logits, which a top-k cache of probabilities lacks; "
                   "use source 'online'")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"distill: {msg} (got {self})")

    @property
    def uses_teachers(self) -> bool:
        return self.alpha > 0


def zero_mean_logits(member_logits: torch.Tensor) -> torch.Tensor:
    """The ensemble's logit target for `mse`: the mean of the members' zero-mean logits."""
    z = member_logits.float()
    return (z - z.mean(-1, keepdim=True)).mean(0)


def kd_loss(logits: torch.Tensor, hard: torch.Tensor, cfg: DistillConfig,
            soft_logp: torch.Tensor | None = None, soft_ids: torch.Tensor | None = None,
            soft_mass: torch.Tensor | None = None,
            teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss per valid frame (hard >= 0) of student logits [..., P].

    soft_logp: log soft targets, dense [..., P] or top-k [..., k] renormalised, with ids
    `soft_ids` [..., k] and optionally the mass they held `soft_mass` [...] (then the KL is over
    the k ids and the rest; without it, over the k ids alone). teacher_logits [..., P] for 'mse'.
    """
    mask = hard >= 0
    z = logits.float()[mask]
    loss = z.new_zeros(())
    if cfg.alpha < 1:
        loss = loss + (1 - cfg.alpha) * F.cross_entropy(z, hard[mask])
    if cfg.alpha == 0:
        return loss
    t = cfg.temperature
    if cfg.mode == "mse":
        v = teacher_logits.float()[mask]
        d = (z - z.mean(-1, keepdim=True)) - v
        return loss + cfg.alpha * 0.5 * d.pow(2).mean(-1).mean()
    logq = torch.log_softmax(z / t, dim=-1)
    logp = soft_logp.float()[mask]
    if soft_ids is not None:
        logq = logq.gather(-1, soft_ids[mask].long())
    if soft_mass is None:
        kl = (logp.exp() * (logp - logq)).sum(-1)
    else:
        mass = soft_mass.float()[mask]
        logp = logp + mass.clamp_min(1e-30).log()[..., None]  # back to the full distribution
        rest_p = (1 - mass).clamp_min(0)
        rest_q = (1 - logq.exp().sum(-1)).clamp_min(1e-12)
        kl = (logp.exp() * (logp - logq)).sum(-1) + torch.xlogy(rest_p, rest_p) - \
            rest_p * rest_q.log()
    return loss + cfg.alpha * t * t * kl.mean()
