"""Transfer sets: audio without transcripts that only the teachers label (Hinton et al. 2015).

A transfer set is a data dir whose CMVN-normalised features are kept on disk in one flat
file, `<data_dir>/transfer/frames.f32` (float32 [N, F], utterances back to back in sorted
order) with `frames.json` (the shape, each utterance's (offset, frames), the fbank settings).
Both it and the top-k soft targets (`asr_kd.train.soft_cache`, the same row order) are
memory-mapped, and a step reads only the rows of its chunks: a transfer set larger than RAM
trains with the memory of a batch.

`TransferChunks` cuts the sets into chunks of C frames and gathers a batch with its context by
clamping the frame index within the utterance, which repeats the edge frames as
`asr_kd.train.chunks.ChunkSet` pads them. Its frames carry no hard target (`SOFT_ONLY`), so
the distillation loss gives them the soft term alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from asr_kd.utils.io import atomic_path, clear_done, is_done, mark_done, write_json

SOFT_ONLY = -1  # target of a transfer frame: no hard target, the soft term only
IGNORE = -100  # target past the end of an utterance: no loss at all
STORE = "transfer"  # the store's folder inside the data dir


def store_dir(data_dir) -> Path:
    return Path(data_dir) / STORE


def write_frame_store(data_dir, feats: Iterable[tuple[str, np.ndarray]], meta: dict) -> Path:
    """Stream (utt, float32 [T, F]) in sorted utterance order to `<data_dir>/transfer/`."""
    out = store_dir(data_dir)
    clear_done(out)
    out.mkdir(parents=True, exist_ok=True)
    index, offset, dim, last = {}, 0, None, None
    with atomic_path(out / "frames.f32") as tmp, open(tmp, "wb") as f:
        for utt, mat in feats:
            if last is not None and utt <= last:
                raise ValueError(f"{data_dir}: utterances must come in sorted order "
                                 f"('{utt}' after '{last}')")
            mat = np.ascontiguousarray(mat, dtype=np.float32)
            if dim is None:
                dim = mat.shape[1]
            elif mat.shape[1] != dim:
                raise ValueError(f"{data_dir}: utterance '{utt}' has {mat.shape[1]} feature "
                                 f"dims, the others {dim}")
            f.write(mat.tobytes())
            index[utt] = (offset, len(mat))
            offset, last = offset + len(mat), utt
    write_json(out / "frames.json", {"frames": offset, "dim": dim, "utts": index, **meta})
    mark_done(out)
    return out


class FrameStore(Mapping):
    """One transfer set's stored frames: {utt: float32 tensor [T, F]} read from the memory map,
    plus the whole memory-mapped array (`frames`) and each utterance's rows (`index`)."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        path = store_dir(data_dir)
        if not is_done(path):
            raise FileNotFoundError(f"{path}: no complete transfer frame store")
        info = json.loads((path / "frames.json").read_text())
        self.meta = {k: v for k, v in info.items() if k != "utts"}
        self.index: dict[str, tuple[int, int]] = {u: tuple(v) for u, v in info["utts"].items()}
        self.num_frames, self.dim = info["frames"], info["dim"]
        self.frames = np.memmap(path / "frames.f32", dtype=np.float32, mode="r",
                                shape=(self.num_frames, self.dim))

    def __getitem__(self, utt: str) -> torch.Tensor:
        o, n = self.index[utt]
        return torch.from_numpy(np.array(self.frames[o:o + n]))

    def __iter__(self) -> Iterator[str]:
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)


class TransferChunks:
    """Chunks of C frames over one or more FrameStores; `batch` gathers a batch's windows.

    soft: per store, None (the teachers run online) or the memory-mapped top-k cache
    (ids, probs, mass) in the store's row order.
    held_out: true for an utterance left out (a perturbed copy of a validation utterance).
    """

    def __init__(self, stores: list[FrameStore], left: int, right: int, chunk_size: int,
                 soft: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                 held_out: Callable[[str], bool] | None = None):
        self.stores, self.soft = stores, soft
        self.left, self.right, self.chunk_size = left, right, chunk_size
        table = []  # per chunk: store, utterance offset, utterance frames, first frame
        self.num_frames = self.held_out_utts = 0
        for s, store in enumerate(stores):
            for utt, (o, n) in store.index.items():
                if held_out is not None and held_out(utt):
                    self.held_out_utts += 1
                    continue
                self.num_frames += n
                c0 = np.arange(0, n, chunk_size)
                table.append(np.stack([np.full_like(c0, s), np.full_like(c0, o),
                                       np.full_like(c0, n), c0], 1))
        self.table = np.concatenate(table) if table else np.zeros((0, 4), np.int64)

    def __len__(self) -> int:
        return len(self.table)

    def draws(self, seed: int, start: int, count: int) -> np.ndarray:
        """Chunk indices number start .. start + count of an endless sequence of seeded
        permutations (one per pass over the set): every chunk is drawn once before any twice,
        and a resumed run draws what the uninterrupted one would have."""
        n = len(self)
        out, pos = [], start
        while pos < start + count:
            cycle, off = divmod(pos, n)
            perm = np.random.default_rng([seed, cycle]).permutation(n)
            take = min(n - off, start + count - pos)
            out.append(perm[off:off + take])
            pos += take
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def batch(self, idx: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Chunks `idx` -> feats [B, C + left + right, F], targets [B, C] (SOFT_ONLY, IGNORE
        past the end) and, with a cache, the soft targets {soft_ids, soft_logp, soft_mass}."""
        s, o, n, c0 = (self.table[idx, j] for j in range(4))
        width = self.chunk_size + self.left + self.right
        t = c0[:, None] + np.arange(-self.left, self.chunk_size + self.right)
        frames = o[:, None] + np.clip(t, 0, n[:, None] - 1)
        cols = np.arange(self.chunk_size)
        valid = cols < (n - c0)[:, None]
        rows = o[:, None] + np.minimum(c0[:, None] + cols, n[:, None] - 1)
        x = np.empty((len(idx), width, self.stores[0].dim), np.float32)
        soft = None
        if self.soft is not None:
            k = self.soft[0][0].shape[1]
            soft = (np.empty((len(idx), self.chunk_size, k), np.int64),
                    np.empty((len(idx), self.chunk_size, k), np.float32),
                    np.empty((len(idx), self.chunk_size), np.float32))
        for j, store in enumerate(self.stores):
            sel = np.flatnonzero(s == j)
            if not len(sel):
                continue
            x[sel] = store.frames[frames[sel]]
            if soft is not None:
                for dst, src in zip(soft, self.soft[j]):
                    dst[sel] = src[rows[sel]]
        y = torch.from_numpy(np.where(valid, SOFT_ONLY, IGNORE)).to(device)
        extra = {}
        if soft is not None:
            ids, probs, mass = soft
            extra = {"soft_ids": torch.from_numpy(ids).to(device),
                     "soft_logp": torch.from_numpy(np.log(np.maximum(probs, 1e-30))).to(device),
                     "soft_mass": torch.from_numpy(mass).to(device)}
        return torch.from_numpy(x).to(device), y, extra


def open_cache_arrays(cache_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The memory-mapped (ids, probs, mass) of a soft-target cache, in its row order."""
    cache_dir = Path(cache_dir)
    return tuple(np.load(cache_dir / f"{name}.npy", mmap_mode="r")
                 for name in ("ids", "probs", "mass"))


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc), for the log's memory figures."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
