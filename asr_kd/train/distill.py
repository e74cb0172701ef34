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
Frames of a transfer set (`transfer`: data dirs without transcripts) have no hard target and
contribute the soft term alone; the step's loss is the mean over all its frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from asr_kd.train.transfer import IGNORE, SOFT_ONLY


@dataclass
class DistillConfig:
    alpha: float = 0.0  # weight of the soft term; 0 trains on the hard targets only
    temperature: float = 1.0
    mode: str = "kl"  # kl | mse
    combine: str = "arithmetic"  # arithmetic | geometric
    source: str = "online"  # online (run the teachers each step) | topk (cache once)
    top_k: int = 20
    # Data dirs of untranscribed audio that only the teachers label (asr_kd.train.transfer).
    transfer: list[str] = field(default_factory=list)
    # The share of a step's chunks drawn from the transfer sets: the batch_size labelled chunks
    # are joined by batch_size * w / (1 - w) transfer chunks (0.5: as many again), so an epoch
    # (one pass over the labelled chunks) takes the same steps with or without them.
    transfer_weight: float = 0.5

    def __post_init__(self):
        checks = [(self.mode in ("kl", "mse"), "mode must be 'kl' or 'mse'"),
                  (self.combine in ("arithmetic", "geometric"),
                   "combine must be 'arithmetic' or 'geometric'"),
                  (self.source in ("online", "topk"), "source must be 'online' or 'topk'"),
                  (0.0 <= self.alpha <= 1.0, "alpha must be in [0, 1]"),
                  (self.temperature > 0, "temperature must be > 0"),
                  (self.top_k >= 1, "top_k must be >= 1"),
                  (0.0 < self.transfer_weight < 1.0, "transfer_weight must be in (0, 1)"),
                  (isinstance(self.transfer, list), "transfer must be a list of data dirs"),
                  (not (self.transfer and self.alpha == 0),
                   "transfer sets have no hard targets, so they need alpha > 0"),
                  (not (self.mode == "mse" and self.source == "topk"),
                   "mode 'mse' matches logits, which a top-k cache of probabilities lacks; "
                   "use source 'online'")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"distill: {msg} (got {self})")

    @property
    def uses_teachers(self) -> bool:
        return self.alpha > 0

    def transfer_chunks(self, batch_size: int) -> int:
        """Transfer chunks joining a step's `batch_size` labelled ones (0 without transfer)."""
        w = self.transfer_weight
        return max(1, round(batch_size * w / (1 - w))) if self.transfer else 0


def zero_mean_logits(member_logits: torch.Tensor) -> torch.Tensor:
    """The ensemble's logit target for `mse`: the mean of the members' zero-mean logits."""
    z = member_logits.float()
    return (z - z.mean(-1, keepdim=True)).mean(0)


def kd_loss(logits: torch.Tensor, hard: torch.Tensor, cfg: DistillConfig,
            soft_logp: torch.Tensor | None = None, soft_ids: torch.Tensor | None = None,
            soft_mass: torch.Tensor | None = None,
            teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss per frame of student logits [..., P] against targets `hard` [...]: a pdf id
    (both terms), SOFT_ONLY (a transfer frame: the soft term alone) or IGNORE (no frame).

    soft_logp: log soft targets, dense [..., P] or top-k [..., k] renormalised, with ids
    `soft_ids` [..., k] and optionally the mass they held `soft_mass` [...] (then the KL is over
    the k ids and the rest; without it, over the k ids alone). teacher_logits [..., P] for 'mse'.
    Frames are weighted by masks, not selected, so the shapes never depend on the data.
    """
    labelled = hard >= 0
    valid = (hard >= SOFT_ONLY).float()
    count = valid.sum().clamp_min(1)
    z = logits.float()
    loss = z.new_zeros(())
    if cfg.alpha < 1:
        ce = F.cross_entropy(z.flatten(0, -2), torch.where(labelled, hard, IGNORE).flatten(),
                             ignore_index=IGNORE, reduction="sum")
        loss = loss + (1 - cfg.alpha) * ce / count
    if cfg.alpha == 0:
        return loss
    t = cfg.temperature
    if cfg.mode == "mse":
        d = (z - z.mean(-1, keepdim=True)) - teacher_logits.float()
        return loss + cfg.alpha * 0.5 * (d.pow(2).mean(-1) * valid).sum() / count
    logq = torch.log_softmax(z / t, dim=-1)
    logp = soft_logp.float()
    if soft_ids is not None:
        logq = logq.gather(-1, soft_ids.long())
    if soft_mass is None:
        kl = (logp.exp() * (logp - logq)).sum(-1)
    else:
        mass = soft_mass.float()
        logp = logp + mass.clamp_min(1e-30).log()[..., None]  # back to the full distribution
        rest_p = (1 - mass).clamp_min(0)
        rest_q = (1 - logq.exp().sum(-1)).clamp_min(1e-12)
        kl = (logp.exp() * (logp - logq)).sum(-1) + torch.xlogy(rest_p, rest_p) - \
            rest_p * rest_q.log()
    # where() and not a product: a padding frame's soft targets may be anything, even NaN.
    return loss + cfg.alpha * t * t * torch.where(valid > 0, kl, 0).sum() / count
