"""Soft targets: the combined distribution of several models' outputs at temperature T, and its
top-k summary for the soft-target cache. Shared by the acoustic models (an ensemble's
posteriors) and distillation (the student's targets), so it lives below both."""

from __future__ import annotations

import math

import torch


def combine_log_probs(member_logits: torch.Tensor, temperature: float,
                      combine: str = "arithmetic") -> torch.Tensor:
    """[E, ..., P] member logits -> [..., P] log of the combined distribution at temperature T."""
    z = member_logits.float() / temperature
    if combine == "geometric":
        return torch.log_softmax(z.mean(0), dim=-1)
    return torch.logsumexp(torch.log_softmax(z, dim=-1), dim=0) - math.log(z.shape[0])


def topk_renormalised(logp: torch.Tensor, k: int):
    """Top-k of a log distribution [..., P]: (ids int32 [..., k], probabilities renormalised over
    the k [..., k], the mass the k held before renormalising [...])."""
    vals, ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
    return ids.to(torch.int32), torch.softmax(vals, dim=-1), vals.logsumexp(-1).exp()
