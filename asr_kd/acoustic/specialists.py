"""A generalist and specialists over clusters of confusable pdfs, combined at test time
(Hinton, Vinyals & Dean 2015, section 5), decoded and distilled like any acoustic model.

Specialist m predicts the pdfs of its cluster S_m plus one dustbin class for all the others.
For a frame, the generalist's `top_n` most probable pdfs pick the active specialists (those
whose cluster holds one of them); the combined distribution q is the one that minimises

    KL(p_g || q) + sum over active m of KL(p_m || q_m),

where q_m is q seen through specialist m's classes (q on S_m, and q's remaining mass as the
dustbin). There is no closed form; `combine_specialists` solves it by gradient descent on q's
logits, batched over frames, each frame with its own step size that halves whenever a step
would not lower its objective, so the objective never increases. Starting from the
generalist's distribution, a frame with no active specialist stays exactly there.
"""

from __future__ import annotations

import torch

from asr_kd.acoustic.base import AcousticModel
from asr_kd.acoustic.dnn import DnnAcousticModel
from asr_kd.utils.io import save_torch


def _views(spec_logp: list[torch.Tensor], cluster_mask: torch.Tensor, active: torch.Tensor):
    """Per specialist active somewhere: (its frames, their log-probs, its cluster mask)."""
    out = []
    for m, lp in enumerate(spec_logp):
        rows = active[:, m].nonzero().squeeze(1)
        if len(rows):
            out.append((rows, lp[rows], cluster_mask[m]))
    return out


def _objective(z: torch.Tensor, logp_g: torch.Tensor, views) -> torch.Tensor:
    """KL(p_g || q) + the active specialists' KLs, per frame, for logits z [N, P]; each
    specialist costs only its own frames (a frame has one or two of many active)."""
    logq = torch.log_softmax(z, dim=-1)
    obj = (logp_g.exp() * (logp_g - logq)).sum(-1)
    for rows, lp, inside in views:
        lq = logq[rows]
        lq_m = torch.cat([lq[:, inside],
                          lq.masked_fill(inside, float("-inf")).logsumexp(-1, keepdim=True)], -1)
        obj = obj.index_add(0, rows, (lp.exp() * (lp - lq_m)).sum(-1))
    return obj


def kl_objective(z: torch.Tensor, logp_g: torch.Tensor, spec_logp: list[torch.Tensor],
                 cluster_mask: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """The objective per frame for logits z [N, P]; cluster_mask [M, P] bool (pdf in cluster
    m), spec_logp[m] [N, |S_m| + 1] (dustbin last), active [N, M] bool."""
    return _objective(z, logp_g, _views(spec_logp, cluster_mask, active))


def combine_specialists(logp_g: torch.Tensor, spec_logp: list[torch.Tensor],
                        cluster_mask: torch.Tensor, active: torch.Tensor, steps: int = 50,
                        step_size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q [N, P], objective per frame [N]) minimising the KL sum above, from q = p_g.

    Each step moves a frame's logits against the gradient by its own step size; a frame whose
    objective would rise stays put and halves its step, one that falls grows it by half again.
    """
    dtype = torch.promote_types(logp_g.dtype, torch.float32)  # bf16 from autocast: float32
    z = logp_g.detach().to(dtype).clone()
    frames = active.any(-1)
    if not bool(frames.any()):
        return torch.log_softmax(z, -1), torch.zeros(len(z), dtype=dtype, device=z.device)
    zf, lg = z[frames], z[frames].clone()
    views = _views([lp[frames].to(dtype) for lp in spec_logp], cluster_mask,
                   active[frames])
    rate = torch.full((len(zf), 1), step_size, dtype=dtype, device=z.device)
    with torch.enable_grad():
        for _ in range(steps):
            zf.requires_grad_(True)
            obj = _objective(zf, lg, views)
            (grad,) = torch.autograd.grad(obj.sum(), zf)
            zf = zf.detach()
            with torch.no_grad():
                cand = zf - rate * grad
                better = (_objective(cand, lg, views) <= obj.detach())[:, None]
                zf = torch.where(better, cand, zf)
                rate = torch.where(better, rate * 1.5, rate * 0.5)
    with torch.no_grad():
        z[frames] = zf
        obj = torch.zeros(len(z), dtype=dtype, device=z.device)
        obj[frames] = _objective(zf, lg, views)
    return torch.log_softmax(z, -1), obj


class SpecialistAcousticModel(AcousticModel):
    """The generalist plus specialists, decoded with the combined distribution.

    clusters[m]: the pdfs specialist m predicts (its outputs 0..|S_m|-1, the dustbin last);
    dustbin_offsets[m]: log((1 - f_m) / f_m), added to its dustbin logit to undo training on
    half cluster frames (f_m: the clusters' share of the training frames)."""

    def __init__(self, generalist: DnnAcousticModel, specialists: list[DnnAcousticModel],
                 clusters: list[list[int]], dustbin_offsets: list[float], top_n: int = 1,
                 steps: int = 50):
        self.generalist, self.specialists = generalist, specialists
        self.clusters, self.dustbin_offsets = clusters, dustbin_offsets
        self.top_n, self.steps = top_n, steps
        self.log_prior = generalist.log_prior
        num_pdfs = len(generalist.log_prior)
        self.cluster_mask = torch.zeros(len(clusters), num_pdfs, dtype=torch.bool)
        for m, c in enumerate(clusters):
            self.cluster_mask[m, c] = True

    @property
    def num_params(self) -> int:
        return self.generalist.num_params + sum(s.num_params for s in self.specialists)

    def flops_per_frame(self, input_dim: int) -> int:
        """With every specialist run (the combination needs only the active ones)."""
        return self.generalist.flops_per_frame(input_dim) + sum(
            s.flops_per_frame(input_dim) for s in self.specialists)

    def active(self, logp_g: torch.Tensor) -> torch.Tensor:
        """[N, M] bool: specialist m's cluster holds one of the generalist's top_n pdfs."""
        top = logp_g.topk(self.top_n, dim=-1).indices  # [N, n]
        return self.cluster_mask.to(logp_g.device)[:, top].any(-1).T

    def specialist_log_probs(self, feats: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Per specialist, per utterance: [T_i, |S_m| + 1] log-probabilities, the training's
        oversampling of the cluster undone on the dustbin."""
        out = []
        for s, offset in zip(self.specialists, self.dustbin_offsets):
            z = s.logits(feats)
            z[..., -1] += offset
            lp = torch.log_softmax(z, dim=-1)
            out.append([lp[i, : f.shape[0]] for i, f in enumerate(feats)])
        return out

    def combine(self, feats: list[torch.Tensor]):
        """Per utterance (combined log q [T, P], generalist log p [T, P], active [T, M])."""
        lengths = [f.shape[0] for f in feats]
        logp_g = torch.cat(self.generalist.log_posteriors(feats))
        spec = [torch.cat(lps) for lps in self.specialist_log_probs(feats)]
        active = self.active(logp_g)
        logq, _ = combine_specialists(logp_g, spec, self.cluster_mask.to(logp_g.device), active,
                                      self.steps)
        return list(zip(logq.split(lengths), logp_g.split(lengths), active.split(lengths)))

    def log_posteriors(self, feats: list[torch.Tensor], temperature: float = 1.0):
        """The combined distribution, at `temperature` for soft targets (softmax(log q / T))."""
        return [torch.log_softmax(lq / temperature, -1) for lq, _, _ in self.combine(feats)]

    def save(self, path, input_dim: int) -> None:
        save_torch(path, {"kind": "specialists", "generalist": self.generalist.to_dict(input_dim),
                     "specialists": [s.to_dict(input_dim) for s in self.specialists],
                     "clusters": self.clusters, "dustbin_offsets": self.dustbin_offsets,
                     "top_n": self.top_n, "steps": self.steps})

    @classmethod
    def from_checkpoint(cls, obj: dict, device) -> SpecialistAcousticModel:
        return cls(DnnAcousticModel.from_checkpoint(obj["generalist"], device),
                   [DnnAcousticModel.from_checkpoint(s, device) for s in obj["specialists"]],
                   obj["clusters"], obj["dustbin_offsets"], obj["top_n"], obj["steps"])
