"""Pieces the built-in acoustic models share."""

from __future__ import annotations

import torch


def pad_edges(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """[B, T, F] -> [B, left + T + right, F], the first and last frames repeated: what Kaldi's
    splicing does at utterance edges, and what training chunks see (train.chunks)."""
    return torch.cat([x[:, :1].expand(-1, left, -1), x, x[:, -1:].expand(-1, right, -1)], dim=1)


def full_lengths(feats: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`lengths` as given, or every sequence the padded length when None."""
    if lengths is None:
        return torch.full((feats.shape[0],), feats.shape[1], device=feats.device)
    return lengths

