"""A top-k soft-target cache: the ensemble run once over the training set, kept on disk.

Layout of the cache dir: ids.npy (int32 [N, k]), probs.npy (float32 [N, k], renormalised
over the k kept) and mass.npy (float32 [N], the share of the distribution the k held), all
memory-mapped, utterances back to back in sorted order; index.json maps each
utterance to (offset, frames) and records how the targets were made (teacher, T, k, combine).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from asr_kd.acoustic.soft_targets import topk_renormalised
from asr_kd.train.crossfit import CrossFitTeacher
from asr_kd.utils.io import atomic_path, clear_done, is_done, mark_done, write_json
from asr_kd.utils.progress import progress


def cache_dir_for(teacher_path, temperature: float, top_k: int, combine: str,
                  transfer_dir=None) -> Path:
    """Beside the teacher: its targets on the training set, or on the transfer set
    `transfer_dir` (named by the dir and a hash of its absolute path, which tells apart two
    recipes' `data/transfer_an4`)."""
    out = Path(teacher_path).parent / "soft_targets" / f"{combine}_T{temperature:g}_k{top_k}"
    if transfer_dir is None:
        return out
    key = hashlib.sha1(str(Path(transfer_dir).resolve()).encode()).hexdigest()[:8]
    return out / "transfer" / f"{Path(transfer_dir).name}-{key}"


@torch.no_grad()
def write_soft_cache(out_dir, teacher, feats: Mapping[str, torch.Tensor], temperature: float,
                     top_k: int, batch_size: int = 16, meta: dict | None = None,
                     lengths: Mapping[str, int] | None = None) -> Path:
    """Run `teacher` (an EnsembleAcousticModel, or a CrossFitTeacher: each utterance its own
    fold's) over `feats` and store its top-k targets.
    `feats` may read each utterance from disk when asked (a transfer set's FrameStore); then
    pass `lengths` ({utt: frames}) so that the layout is known without reading it all twice."""
    out_dir = Path(out_dir)
    clear_done(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    utts = sorted(feats)
    index, offset = {}, 0
    for u in utts:
        n = int(lengths[u]) if lengths is not None else int(feats[u].shape[0])
        index[u] = (offset, n)
        offset += n
    k = min(top_k, len(teacher.log_prior))
    with atomic_path(out_dir / "ids.npy") as ids_tmp, \
            atomic_path(out_dir / "probs.npy") as probs_tmp, \
            atomic_path(out_dir / "mass.npy") as mass_tmp:
        ids = np.lib.format.open_memmap(ids_tmp, mode="w+", dtype=np.int32, shape=(offset, k))
        probs = np.lib.format.open_memmap(probs_tmp, mode="w+", dtype=np.float32,
                                          shape=(offset, k))
        mass = np.lib.format.open_memmap(mass_tmp, mode="w+", dtype=np.float32, shape=(offset,))
        for i in progress(range(0, len(utts), batch_size), "soft targets", unit="batches"):
            batch = utts[i:i + batch_size]
            by_utt = {"utts": batch} if isinstance(teacher, CrossFitTeacher) else {}
            logps = teacher.log_posteriors([feats[u] for u in batch], temperature, **by_utt)
            for u, lp in zip(batch, logps):
                top_ids, top_p, top_mass = topk_renormalised(lp, k)
                o, n = index[u]
                ids[o:o + n] = top_ids.cpu().numpy()
                probs[o:o + n] = top_p.cpu().numpy()
                mass[o:o + n] = top_mass.cpu().numpy()
        for a in (ids, probs, mass):
            a.flush()
        del ids, probs, mass
    write_json(out_dir / "index.json", {"utts": index, "frames": offset, "top_k": k,
                                        "temperature": temperature, **(meta or {})})
    mark_done(out_dir)
    return out_dir


def load_soft_cache(cache_dir, utts: list[str]) -> tuple[torch.Tensor, torch.Tensor,
                                                         torch.Tensor]:
    """(ids int64 [N, k], renormalised log-probs [N, k], kept mass [N]) for `utts` back to back,
    in the given order."""
    cache_dir = Path(cache_dir)
    if not is_done(cache_dir):
        raise FileNotFoundError(f"{cache_dir}: no complete soft-target cache")
    index = json.loads((cache_dir / "index.json").read_text())["utts"]
    ids = np.load(cache_dir / "ids.npy", mmap_mode="r")
    probs = np.load(cache_dir / "probs.npy", mmap_mode="r")
    mass = np.load(cache_dir / "mass.npy", mmap_mode="r")
    missing = [u for u in utts if u not in index]
    if missing:
        raise ValueError(f"{cache_dir}: utterance '{missing[0]}' is not in the cache "
                         f"({len(missing)} missing)")
    rows = np.concatenate([np.arange(o, o + n) for o, n in (index[u] for u in utts)])
    logp = torch.from_numpy(np.log(np.maximum(probs[rows], 1e-30)))
    return (torch.from_numpy(ids[rows].astype(np.int64)), logp,
            torch.from_numpy(np.asarray(mass[rows])))
