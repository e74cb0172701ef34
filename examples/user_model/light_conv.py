"""An acoustic model defined outside asr-kd, plugged in from a recipe config.

Put this file's directory on PYTHONPATH and name the class by its dotted path:

    # conf/teachers.yaml (or student.yaml)
    model:
      class: "light_conv:LightConvNet"
      args: {channels: 256, num_blocks: 4, kernel_size: 5}

    PYTHONPATH=$PWD/../../examples/user_model bash run.sh

The interface asr-kd needs (it checks it on a probe batch at start-up):
- constructed as `LightConvNet(input_dim=..., num_pdfs=..., **args)`;
- `forward(feats [B, T, F], lengths [B]) -> logits [B, T, num_pdfs]`, one output per frame;
- `left_context` / `right_context`: how many frames either side an output frame looks at.
  Training feeds chunks of frames with that much context around them, and scores only the
  chunk's own frames.

Optional: `forward_inner(feats) -> [B, T - left - right, num_pdfs]`, the outputs of only the
frames whose context is inside `feats`, lets training skip work on the context frames.

This model: depthwise-separable 1-D convolutions with gated linear units and residual
connections (in the style of lightweight convolutions, Wu et al. 2019), at the frame rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LightConvBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dropout: float):
        super().__init__()
        self.half = (kernel_size - 1) // 2
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, groups=channels)
        self.pointwise = nn.Conv1d(channels, 2 * channels, 1)
        self.norm = nn.BatchNorm1d(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, C, T]
        # Edge frames repeated, as asr-kd pads utterances for training chunks.
        y = self.depthwise(F.pad(h, (self.half, self.half), mode="replicate"))
        y = F.glu(self.pointwise(y), dim=1)
        return h + self.dropout(self.norm(y))


class LightConvNet(nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int, channels: int = 256, num_blocks: int = 4,
                 kernel_size: int = 5, dropout: float = 0.1):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        # Each block looks (kernel_size - 1) / 2 frames further either way.
        self.left_context = self.right_context = num_blocks * (kernel_size - 1) // 2
        self.input = nn.Conv1d(input_dim, channels, 1)
        self.blocks = nn.Sequential(*[LightConvBlock(channels, kernel_size, dropout)
                                      for _ in range(num_blocks)])
        self.output = nn.Conv1d(channels, num_pdfs, 1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(torch.relu(self.input(feats.transpose(1, 2))))
        return self.output(h).transpose(1, 2)
