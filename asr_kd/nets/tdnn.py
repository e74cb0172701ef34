"""Time-delay networks: dilated 1-D convolutions over time (Peddinti et al. 2015; Kaldi's nnet3
TDNNs), and the same body behind a 2-D convolutional front end over time and frequency
(Kaldi's CNN-TDNN).

Layer i with kernel k and dilation d looks at offsets {-(k-1)/2 * d, ..., 0, ..., (k-1)/2 * d},
so the context is the sum of those half-widths. Convolutions run unpadded ("valid") over the
edge-padded input: an output frame depends on exactly its declared context, and a training chunk
(which carries that context) needs no padding at all (`forward_inner`).
"""

from __future__ import annotations

import torch
from torch import nn

from asr_kd.nets.layers import pad_edges
from asr_kd.nets.registry import register

# (kernel, dilation) per layer: Kaldi's {-2..2}, {-1,0,1}, {-1,0,1}, {-3,0,3}, {-3,0,3}.
DEFAULT_LAYERS = [[5, 1], [3, 1], [3, 1], [3, 3], [3, 3]]


def _check_layers(layers) -> list[tuple[int, int]]:
    out = []
    for spec in layers:
        k, d = spec
        if k < 1 or k % 2 == 0 or d < 1:
            raise ValueError(f"TDNN layer {spec}: kernel must be odd and >= 1, dilation >= 1")
        out.append((int(k), int(d)))
    return out


class TdnnStack(nn.Module):
    """[B, C, T] -> [B, hidden, T - 2 * context]: conv, ReLU, batch norm (Kaldi's
    relu-batchnorm-layer), dropout, per layer."""

    def __init__(self, in_dim: int, hidden_dim: int, layers, dropout: float):
        super().__init__()
        self.layers = _check_layers(layers)
        self.context = sum((k - 1) // 2 * d for k, d in self.layers)
        blocks: list[nn.Module] = []
        dim = in_dim
        for k, d in self.layers:
            blocks += [nn.Conv1d(dim, hidden_dim, k, dilation=d), nn.ReLU(),
                       nn.BatchNorm1d(hidden_dim)]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            dim = hidden_dim
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("tdnn")
class Tdnn(nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int, hidden_dim: int = 512,
                 layers=None, dropout: float = 0.0):
        super().__init__()
        self.body = TdnnStack(input_dim, hidden_dim, layers or DEFAULT_LAYERS, dropout)
        self.left_context = self.right_context = self.body.context
        self.output = nn.Linear(hidden_dim, num_pdfs)

    def forward_inner(self, feats: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> logits of the frames with their whole context inside:
        [B, T - left - right, P]."""
        h = self.body(feats.transpose(1, 2))
        return self.output(h.transpose(1, 2))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_inner(pad_edges(feats, self.left_context, self.right_context))


@register("cnn_tdnn")
class CnnTdnn(nn.Module):
    """2-D convolutions (3x3, unpadded in time, padded in frequency; a frequency stride shrinks
    the bins) then a TDNN over the flattened channels x bins."""

    def __init__(self, input_dim: int, num_pdfs: int, conv_channels=(32, 64),
                 freq_strides=(1, 2), hidden_dim: int = 512, layers=None,
                 dropout: float = 0.0):
        super().__init__()
        if len(conv_channels) != len(freq_strides):
            raise ValueError(f"conv_channels {list(conv_channels)} and freq_strides "
                             f"{list(freq_strides)} must be as long as each other")
        blocks: list[nn.Module] = []
        ch, bins = 1, input_dim
        for c, s in zip(conv_channels, freq_strides):
            blocks += [nn.Conv2d(ch, c, (3, 3), stride=(1, s), padding=(0, 1)), nn.ReLU(),
                       nn.BatchNorm2d(c)]
            ch, bins = c, (bins - 1) // s + 1
        self.conv = nn.Sequential(*blocks)
        self.body = TdnnStack(ch * bins, hidden_dim, layers or DEFAULT_LAYERS, dropout)
        self.left_context = self.right_context = len(conv_channels) + self.body.context
        self.output = nn.Linear(hidden_dim, num_pdfs)

    def forward_inner(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.conv(feats[:, None])  # [B, C, T', bins]
        b, c, t, f = h.shape
        h = self.body(h.permute(0, 1, 3, 2).reshape(b, c * f, t))
        return self.output(h.transpose(1, 2))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_inner(pad_edges(feats, self.left_context, self.right_context))
