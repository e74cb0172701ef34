"""The paper's acoustic model: an MLP over a window of spliced frames (Hinton et al. 2015 used
26 frames of 40 log-mel bins, 8 x 2560 ReLU, softmax over the HMM states)."""

from __future__ import annotations

import torch
from torch import nn

from asr_kd.nets.layers import pad_edges
from asr_kd.nets.registry import register


def splice(x: torch.Tensor, left: int, right: int, pad: bool = True) -> torch.Tensor:
    """[B, T, F] -> [B, T, (left + 1 + right) * F], edge frames replicated (Kaldi's splicing).
    pad=False splices only the frames whose context is inside x: [B, T - left - right, ...]."""
    if pad:
        x = pad_edges(x, left, right)
    windows = x.unfold(1, left + 1 + right, 1)  # [B, T', F, W]
    return windows.transpose(2, 3).reshape(x.shape[0], windows.shape[1], -1)


@register("mlp")
class SplicedMLP(nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int, left_context: int = 5,
                 right_context: int = 5, hidden_dim: int = 512, num_layers: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.left_context, self.right_context = left_context, right_context
        layers: list[nn.Module] = []
        dim = input_dim * (left_context + 1 + right_context)
        for _ in range(num_layers):
            layers += [nn.Linear(dim, hidden_dim), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = hidden_dim
        layers.append(nn.Linear(dim, num_pdfs))
        self.net = nn.Sequential(*layers)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # [B, T, F] -> [B, T, (L+1+R) F] -> [B, T, num_pdfs]
        return self.net(splice(feats, self.left_context, self.right_context))

    def forward_inner(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits of only the frames whose whole context is in `feats` [B, T, F]:
        [B, T - left - right, P]. Training chunks need no more, and skip the padded frames."""
        return self.net(splice(feats, self.left_context, self.right_context, pad=False))
