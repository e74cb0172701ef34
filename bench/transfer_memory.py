"""Resident memory of distillation on a transfer set larger than RAM.

Tiles a real transfer set's frame store and its top-k soft-target cache (made by a recipe's
stage 7) into a store of --gb gigabytes of frames plus as much again of targets. It then
trains a student on it as `train_members` does: TransferChunks gathers each step's chunks from
the memory maps, kd_loss gives them the soft term alone, then backward and MemberAdam. It prints
the process's anonymous resident memory (RssAnon: what the training holds), its file-backed
resident memory (RssFile: pages of the maps the kernel keeps cached and may drop) and the
machine's free memory, every --every steps.

    python bench/transfer_memory.py \
      --source recipes/an4/data/transfer_librispeech_dev_clean \
      --cache recipes/an4/exp/ensemble/soft_targets/arithmetic_T2_k20/transfer/<dir> \
      --out /tmp/big_transfer --gb 13 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from asr_kd.nets import build_model
from asr_kd.train.distill import DistillConfig, kd_loss
from asr_kd.train.members import LoopMembers
from asr_kd.train.trainer import MemberAdam
from asr_kd.train.transfer import FrameStore, TransferChunks, open_cache_arrays, store_dir
from asr_kd.utils.io import mark_done, write_json


def status(*keys: str) -> dict[str, float]:
    """Fields of /proc/self/status (VmRSS, RssAnon, ...) in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in keys:
            out[k] = int(v.split()[0]) / 1024
    return out


def free_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tile(src: np.ndarray, dst: Path, rows: int) -> None:
    """dst: `rows` rows of src repeated, written in blocks (never all in memory)."""
    with open(dst, "wb") as f:
        done = 0
        while done < rows:
            n = min(len(src), rows - done)
            for i in range(0, n, 1 << 20):
                f.write(np.ascontiguousarray(src[i:min(i + (1 << 20), n)]).tobytes())
            done += n


def build(source: Path, cache: Path, out: Path, gb: float) -> int:
    """out/ as a transfer dir (its store) and out/cache (its top-k targets): `gb` of frames."""
    store = FrameStore(source)
    copies = max(1, int(np.ceil(gb * 2 ** 30 / (store.num_frames * store.dim * 4))))
    rows = copies * store.num_frames
    if (store_dir(out) / ".done").exists() and (out / "cache" / "mass.npy").exists():
        return copies
    shutil.rmtree(out, ignore_errors=True)
    store_dir(out).mkdir(parents=True)
    t0 = time.time()
    tile(store.frames, store_dir(out) / "frames.f32", rows)
    index = {f"rep{c:04d}-{u}": (c * store.num_frames + o, n) for c in range(copies)
             for u, (o, n) in store.index.items()}
    write_json(store_dir(out) / "frames.json", {**store.meta, "frames": rows,
                                                "dim": store.dim, "utts": index})
    mark_done(store_dir(out))
    (out / "cache").mkdir()
    for name, arr in zip(("ids", "probs", "mass"), open_cache_arrays(cache)):
        with open(out / "cache" / f"{name}.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(
                arr.dtype), "fortran_order": False, "shape": (rows, *arr.shape[1:])})
        with open(out / "cache" / f"{name}.npy", "ab") as f:
            for _ in range(copies):
                f.write(np.ascontiguousarray(arr).tobytes())
    print(f"built {rows:,} frames ({copies} copies of {source}) in {time.time() - t0:.0f} s")
    return copies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, required=True, help="a transfer dir with its store")
    p.add_argument("--cache", type=Path, required=True, help="its top-k soft-target cache")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--gb", type=float, default=13.0, help="gigabytes of frames")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--batch", type=int, default=64, help="transfer chunks per step")
    a = p.parse_args()
    build(a.source, a.cache, a.out, a.gb)
    store = FrameStore(a.out)
    soft = open_cache_arrays(a.out / "cache")
    frames_gb = store.num_frames * store.dim * 4 / 2 ** 30
    soft_gb = sum(x.nbytes for x in soft) / 2 ** 30
    num_pdfs = int(np.asarray(soft[0][:100000]).max()) + 1
    net = build_model({"class": "mlp", "args": {"left_context": 5, "right_context": 5,
                                                "hidden_dim": 256, "num_layers": 2}},
                      store.dim, num_pdfs)
    members = LoopMembers([net])
    opt = MemberAdam(members.member_params(), 1, 5e-4)
    cfg = DistillConfig(alpha=0.8, temperature=2.0, source="topk")
    chunks = TransferChunks([store], net.left_context, net.right_context, 16, soft=[soft])
    print(f"transfer set: {store.num_frames:,} frames ({store.num_frames / 360000:.0f} h), "
          f"{frames_gb:.1f} GB of frames + {soft_gb:.1f} GB of top-k targets; "
          f"{len(chunks):,} chunks; machine RAM "
          f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2 ** 20:.1f} GB")
    print("| step | RssAnon MB | RssFile MB | VmHWM MB | MemAvailable MB | steps/s |")
    print("|---|---|---|---|---|---|")
    t0 = time.time()
    draws = chunks.draws(0, 0, a.steps * a.batch).reshape(a.steps, a.batch)
    for step in range(1, a.steps + 1):
        x, y, extra = chunks.batch(draws[step - 1], "cpu")
        z = members.center_logits(x, chunks.left, chunks.chunk_size)[0]
        loss = kd_loss(z, y, cfg, **extra)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % a.every == 0 or step == 1:
            s = status("RssAnon", "RssFile", "VmHWM")
            print(f"| {step} | {s['RssAnon']:.0f} | {s['RssFile']:.0f} | {s['VmHWM']:.0f} | "
                  f"{free_mb():.0f} | {step / (time.time() - t0):.1f} |", flush=True)
    print(json.dumps({"frames": store.num_frames, "frames_gb": round(frames_gb, 2),
                      "soft_gb": round(soft_gb, 2), "steps": a.steps,
                      "final_loss": round(float(loss), 4)}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
