"""Bidirectional LSTM acoustic model (Kaldi's BLSTM recipes, Sak et al. 2014).

It sees whole utterances when decoding. In training it sees chunks with `left_context` /
`right_context` extra frames on each side, as Kaldi's chunk-based BLSTM training does
(--chunk-left-context / --chunk-right-context), so the states at the chunk's edges are warmed up.
Padded frames of a batch are packed out, so an utterance scores the same alone or in a batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr_kd.nets.registry import register


@register("blstm")
class Blstm(nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int, hidden_dim: int = 256,
                 num_layers: int = 2, dropout: float = 0.0, left_context: int = 10,
                 right_context: int = 10):
        super().__init__()
        self.left_context, self.right_context = left_context, right_context
        self.lstm = nn.LSTM(input_dim, hidden_dim, num_layers=num_layers, bidirectional=True,
                            batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.output = nn.Linear(2 * hidden_dim, num_pdfs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:  # every sequence whole: nothing to pack (and ONNX-exportable)
            return self.output(self.lstm(feats)[0])
        packed = pack_padded_sequence(feats, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                   total_length=feats.shape[1])
        return self.output(h)
