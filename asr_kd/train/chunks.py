"""Chunks of frames with their context, gathered from one contiguous feature tensor.

All utterances are stored back to back, each padded with `left` / `right` replicated edge frames,
so a chunk of C frames plus context is a plain slice: frame-splicing MLPs and sequence models
train through the same loop. The tensor can live on the GPU, where batches are gathered there.
"""

from __future__ import annotations

import numpy as np
import torch


class ChunkSet:
    def __init__(self, feats: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                 left: int, right: int, chunk_size: int, device: torch.device):
        self.utts = sorted(u for u in feats if u in targets)
        self.left, self.right, self.chunk_size = left, right, chunk_size
        pieces, tpieces, starts, tstarts, lens = [], [], [], [], []
        offset = toffset = 0
        for u in self.utts:
            x, y = feats[u], targets[u]
            if len(x) != len(y):
                raise ValueError(f"utterance '{u}': {len(x)} feature frames but {len(y)} "
                                 f"alignment frames")
            pieces.append(np.concatenate([np.repeat(x[:1], left, 0), x,
                                          np.repeat(x[-1:], right, 0)]))
            tpieces.append(y)
            starts.append(offset)
            tstarts.append(toffset)
            lens.append(len(x))
            offset += len(x) + left + right
            toffset += len(x)
        self.feats = torch.from_numpy(np.concatenate(pieces).astype(np.float32)).to(device)
        self.targets = torch.from_numpy(np.concatenate(tpieces).astype(np.int64)).to(device)
        # Chunk k covers frames [c0, c0 + n) of its utterance.
        ch_feat, ch_tgt, ch_len = [], [], []
        for s, ts, n in zip(starts, tstarts, lens):
            for c0 in range(0, n, chunk_size):
                ch_feat.append(s + c0)
                ch_tgt.append(ts + c0)
                ch_len.append(min(chunk_size, n - c0))
        self.chunk_feat = torch.tensor(ch_feat, device=device)
        self.chunk_tgt = torch.tensor(ch_tgt, device=device)
        self.chunk_len = torch.tensor(ch_len, device=device)
        self.num_frames = int(sum(lens))

    def __len__(self) -> int:
        return len(self.chunk_len)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chunks `idx` -> feats [B, C + left + right, F], targets [B, C] (-100 past the end),
        rows [B, C] of those frames in the concatenated per-frame order (`self.targets`), by
        which per-frame data such as cached soft targets is looked up."""
        width = self.chunk_size + self.left + self.right
        frames = self.chunk_feat[idx, None] + torch.arange(width, device=idx.device)
        frames = frames.clamp_max(len(self.feats) - 1)
        cols = torch.arange(self.chunk_size, device=idx.device)
        valid = cols < self.chunk_len[idx, None]
        rows = (self.chunk_tgt[idx, None] + cols).clamp_max(len(self.targets) - 1)
        return self.feats[frames], torch.where(valid, self.targets[rows], -100), rows
