"""A small Conformer acoustic model (Gulati et al. 2020) at the frame rate of the HMM alignments:
a linear projection, Conformer blocks, a linear output layer.

No subsampling, since a hybrid model scores every frame. Decoding attends over the whole
utterance; training attends over a chunk and its declared `left_context` / `right_context`
frames. Padded frames of a batch are kept out of attention (key mask) and zeroed before the
depthwise convolution, so an utterance scores the same alone or in a batch (torchaudio's
Conformer lets padding into the convolution, hence this module).
"""

from __future__ import annotations

import torch
from torch import nn

from asr_kd.nets.layers import full_lengths
from asr_kd.nets.registry import register


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))


class ConvModule(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dropout: float):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conformer kernel_size must be odd, got {kernel_size}")
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.batch_norm = nn.BatchNorm1d(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x [B, T, D], pad [B, T] True on padded frames."""
        h = nn.functional.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)
        h = h.masked_fill(pad[:, None], 0.0)  # as if the utterance ended there
        h = nn.functional.silu(self.batch_norm(self.depthwise(h)))
        return self.dropout(self.pointwise_out(h).transpose(1, 2))


class ConformerBlock(nn.Module):
    """Half-step feed-forward, self-attention, convolution, half-step feed-forward, layer norm."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, kernel_size: int,
                 dropout: float):
        super().__init__()
        self.ffn1 = FeedForward(dim, ffn_dim, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, kernel_size, dropout)
        self.ffn2 = FeedForward(dim, ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        h = self.attn_norm(x)
        h, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
        x = x + self.attn_dropout(h)
        x = x + self.conv(x, pad)
        x = x + 0.5 * self.ffn2(x)
        return self.final_norm(x)


@register("conformer")
class ConformerAcousticModel(nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int, d_model: int = 144, num_heads: int = 4,
                 ffn_dim: int = 576, num_layers: int = 4, kernel_size: int = 15,
                 dropout: float = 0.1, left_context: int = 16, right_context: int = 16):
        super().__init__()
        self.left_context, self.right_context = left_context, right_context
        self.input = nn.Linear(input_dim, d_model)
        self.blocks = nn.ModuleList(ConformerBlock(d_model, num_heads, ffn_dim, kernel_size,
                                                   dropout) for _ in range(num_layers))
        self.output = nn.Linear(d_model, num_pdfs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = full_lengths(feats, lengths)
        pad = torch.arange(feats.shape[1], device=feats.device)[None] >= lengths[:, None]
        h = self.input(feats)
        for block in self.blocks:
            h = block(h, pad)
        return self.output(h)
