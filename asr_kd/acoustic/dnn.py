"""Trained acoustic models as the decoder sees them: fbank in, log-likelihoods out.

A DNN gives posteriors; the hybrid decoder needs scaled likelihoods, log p(o|s) = log P(s|o) -
log P(s) + const, with P(s) the pdf priors counted on the training alignments. A pdf never seen
in training (a prior under 1e-10) gets the log prior `UNSEEN_LOG_PRIOR`, as Kaldi's nnet1 does
(PdfPrior: sqrt(FLT_MAX)), so that its likelihood is negligible but finite. Flooring its prior
at 1e-10 instead would add 23 nats to it: the decoder would favour the pdf the DNN never
learned to predict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asr_kd.acoustic.base import AcousticModel
from asr_kd.acoustic.soft_targets import combine_log_probs
from asr_kd.nets import build_model
from asr_kd.utils.io import save_torch
from asr_kd.utils.runtime import SCORE_DTYPE

UNSEEN_LOG_PRIOR = 1e4  # with acoustic scale 0.1, a cost of 1000 per frame


def pad_replicate(seqs: list[torch.Tensor]) -> torch.Tensor:
    """Pad [T_i, F] sequences to [B, T_max, F] by repeating each one's last frame, so a model's
    right context at the end of a short utterance sees what it would see alone."""
    t_max = max(s.shape[0] for s in seqs)
    return torch.stack([torch.cat([s, s[-1:].expand(t_max - s.shape[0], -1)]) for s in seqs])


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


# Attention's fused CPU kernel, which torch's counter has no formula for (it has the GPU ones).
_CPU_ATTENTION_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
                        _sdpa_cpu_flops}


def flops_per_frame(net: torch.nn.Module, input_dim: int, frames: int = 64) -> int:
    """Floating-point operations (a multiply-add counts 2) per output frame, counted by torch's
    FlopCounterMode, so a user's architecture is counted as well.

    A model with `forward_inner` (cost linear in frames) is counted at its steady state: the
    cost of `frames` more output frames, so the extra frames its hidden layers compute at a
    chunk's edges do not count. Any other model is counted on one `frames`-frame sequence.
    Recurrent layers run as fused kernels (mkldnn, cuDNN) that the counter does not see; they
    are counted as their matrix-vector products: 2 x weights per frame and direction."""
    from torch.utils.flop_counter import FlopCounterMode

    dev = next(net.parameters()).device
    rnns = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.RNNBase)}
    rnn_weights = sum(p.numel() for m in rnns.values()
                      for n, p in m.named_parameters() if n.startswith("weight_"))

    def count(t: int) -> int:
        # With autograd on: in no_grad mode, nn.MultiheadAttention takes a fused fast path
        # that the counter does not see.
        with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as counter:
            if hasattr(net, "forward_inner"):
                net.forward_inner(torch.zeros(1, net.left_context + t + net.right_context,
                                              input_dim, device=dev))
            else:
                net(torch.zeros(1, t, input_dim, device=dev), torch.tensor([t], device=dev))
        counts = counter.get_flop_counts()
        in_rnns = sum(sum(counts.get(f"{type(net).__name__}.{n}", {}).values()) for n in rnns)
        return counter.get_total_flops() - in_rnns + 2 * t * rnn_weights

    if hasattr(net, "forward_inner"):
        return round((count(2 * frames) - count(frames)) / frames)
    return round(count(frames) / frames)


def read_priors(path) -> np.ndarray:
    text = Path(path).read_text().replace("[", " ").replace("]", " ")
    return np.array([float(x) for x in text.split()], dtype=np.float64)


class DnnAcousticModel(AcousticModel):
    def __init__(self, net: torch.nn.Module, spec: dict, pdf_counts: np.ndarray):
        self.net, self.spec = net.eval(), spec
        prior = pdf_counts / pdf_counts.sum()
        log_prior = np.where(prior < 1e-10, UNSEEN_LOG_PRIOR, np.log(np.maximum(prior, 1e-10)))
        self.log_prior = torch.from_numpy(log_prior).float()
        self.pdf_counts = pdf_counts

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def flops_per_frame(self, input_dim: int) -> int:
        return flops_per_frame(self.net, input_dim)

    @torch.no_grad()
    def logits(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Utterances [T_i, F] -> padded logits [B, T_max, P], in float32 on every device
        (asr_kd.utils.runtime: scoring never runs under autocast)."""
        dev = next(self.net.parameters()).device
        x = pad_replicate([f.to(dev, SCORE_DTYPE) for f in feats])
        lengths = torch.tensor([f.shape[0] for f in feats], device=dev)
        return self.net(x, lengths).to(SCORE_DTYPE)

    def log_posteriors(self, feats: list[torch.Tensor],
                       temperature: float = 1.0) -> list[torch.Tensor]:
        logp = torch.log_softmax(self.logits(feats) / temperature, dim=-1)
        return [logp[i, : f.shape[0]] for i, f in enumerate(feats)]

    def to_dict(self, input_dim: int) -> dict:
        return {"kind": "dnn", "spec": self.spec, "input_dim": input_dim,
                "num_pdfs": len(self.pdf_counts),
                "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
                "pdf_counts": torch.from_numpy(self.pdf_counts.astype(np.float64))}

    def save(self, path, input_dim: int) -> None:
        save_torch(path, self.to_dict(input_dim))

    @classmethod
    def from_checkpoint(cls, obj: dict, device) -> DnnAcousticModel:
        net = build_model(obj["spec"], obj["input_dim"], obj["num_pdfs"])
        net.load_state_dict(obj["state_dict"])
        return cls(net.to(device), obj["spec"], obj["pdf_counts"].numpy())


class EnsembleAcousticModel(AcousticModel):
    """Members' posteriors averaged (arithmetic mean, or normalised geometric mean), decoded
    like any model; the priors are the members' (all trained on the same alignments)."""

    def __init__(self, members: list[DnnAcousticModel], combine: str = "arithmetic"):
        self.members, self.combine = members, combine
        self.log_prior = members[0].log_prior

    @property
    def num_params(self) -> int:
        return sum(m.num_params for m in self.members)

    def flops_per_frame(self, input_dim: int) -> int:
        return sum(m.flops_per_frame(input_dim) for m in self.members)

    def member_logits(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """[E, B, T_max, P], utterances padded as `pad_replicate` does."""
        return torch.stack([m.logits(feats) for m in self.members])

    def log_posteriors(self, feats: list[torch.Tensor],
                       temperature: float = 1.0) -> list[torch.Tensor]:
        logp = combine_log_probs(self.member_logits(feats), temperature, self.combine)
        return [logp[i, : f.shape[0]] for i, f in enumerate(feats)]

    def save(self, path, input_dim: int) -> None:
        save_torch(path, {"kind": "ensemble", "combine": self.combine,
                     "members": [m.to_dict(input_dim) for m in self.members]})
