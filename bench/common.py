"""What the bench scripts share: arguments, device, timing, peak FLOP/s, the corpora, and the
training step of `asr_kd.train.trainer.train_members` (train, ensemble and distill time it)."""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
LIBRISPEECH = CORPORA / "librispeech_subset" / "train-clean-5"
CMUDICT = CORPORA / "cmudict" / "cmudict.dict"
if str(REPO) not in sys.path:  # asr_kd and local/ from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from asr_kd.lang import prepare_lang  # noqa: E402
from asr_kd.train.chunks import ChunkSet  # noqa: E402
from asr_kd.train.distill import DistillConfig, kd_loss  # noqa: E402
from asr_kd.train.members import make_members  # noqa: E402
from asr_kd.train.trainer import MemberAdam  # noqa: E402
from asr_kd.utils.io import write_lines  # noqa: E402
from asr_kd.utils.runtime import runtime_policy  # noqa: E402
from local.fsdd import read_cmudict  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets. The first
# entry whose key is in torch.cuda.get_device_name() wins, so "H100 PCIe" precedes "H100";
# "H200" also matches GH200 (same peak).
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("H200", 989.4), ("A100", 312.0), ("L40S", 362.0)]

FEAT_DIM = 40  # fbank bins of every shape below


def mlp_spec(left: int, right: int, hidden: int, layers: int) -> dict:
    return {"class": "mlp", "args": {"left_context": left, "right_context": right,
                                     "hidden_dim": hidden, "num_layers": layers}}


# (model spec, num_pdfs). paper: Hinton et al. 2015's speech model, 26 frames x 40 bins in,
# 8 x 2560 ReLU, 14,000 HMM states; recipe: 11 x 40 in, 6 x 1024, 2000 pdfs. --quick swaps in
# tiny stand-ins of the same depth pattern so a CPU finishes in seconds.
SHAPES = {"paper": (mlp_spec(12, 13, 2560, 8), 14000), "recipe": (mlp_spec(5, 5, 1024, 6), 2000)}
QUICK_SHAPES = {"paper": (mlp_spec(12, 13, 128, 2), 500), "recipe": (mlp_spec(5, 5, 64, 2), 200)}


def shape(name: str, quick: bool) -> tuple[dict, int]:
    return (QUICK_SHAPES if quick else SHAPES)[name]


def describe(spec: dict, num_pdfs: int) -> str:
    a = spec["args"]
    width = a["left_context"] + 1 + a["right_context"]
    return f"{width * FEAT_DIM} in, {a['num_layers']}x{a['hidden_dim']}, {num_pdfs} out"


def macs_per_frame(spec: dict, num_pdfs: int) -> int:
    """Multiply-adds of one forward pass of one frame: the MLP's weight matrices (biases, ReLU
    and softmax are <0.1% of it). Training costs 3x this (forward, two backward matmuls)."""
    a = spec["args"]
    dims = ([FEAT_DIM * (a["left_context"] + 1 + a["right_context"])]
            + [a["hidden_dim"]] * a["num_layers"] + [num_pdfs])
    return sum(x * y for x, y in zip(dims, dims[1:]))


# ------------------------------------------------------------------ arguments, device, timing


def parse_args(doc: str, add=None) -> argparse.Namespace:
    summary, _, details = doc.partition("\n\n")  # the docstring's first paragraph, the rest
    p = argparse.ArgumentParser(description=summary, epilog=details or None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: a smoke check that finishes in seconds on a CPU")
    p.add_argument("--json", type=Path, default=None,
                   help="also append the JSON line of figures to this file")
    if add is not None:
        add(p)
    return p.parse_args()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return torch.device(name)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} torch threads)"


def peak_bf16_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn, device: torch.device, warmup: int = 2, min_seconds: float = 1.0,
                  max_calls: int = 100_000) -> float:
    """Mean wall seconds per call of fn() after `warmup` untimed calls. Calls go on until
    `min_seconds` have passed, then the device is synchronised: GPU work is queued
    asynchronously, so the clock only stops once the last call's kernels are done."""
    for _ in range(warmup):
        fn()
    sync(device)
    calls, t0 = 0, time.perf_counter()
    while calls < max_calls and (calls == 0 or time.perf_counter() - t0 < min_seconds):
        fn()
        calls += 1
    sync(device)
    return (time.perf_counter() - t0) / calls


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# ------------------------------------------------------------------ output


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


class Report:
    """A header (bench, device, torch, date), then rows of figures printed as a table at the
    end, followed by everything as one JSON line."""

    def __init__(self, bench: str, device: torch.device, args: argparse.Namespace):
        self.meta = {"bench": bench, "device": device_name(device), "device_type": device.type,
                     "torch": torch.__version__,
                     "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "quick": bool(args.quick)}
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.json_path = args.json
        print(f"bench {bench}{' (--quick: smoke sizes, not a measurement)' if args.quick else ''}"
              f"\ndevice: {self.meta['device']}\ntorch {torch.__version__}, "
              f"{self.meta['date']}", flush=True)

    def add(self, **row) -> None:
        self.rows.append(row)
        print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self) -> None:
        cols = list(dict.fromkeys(k for r in self.rows for k in r))
        numeric = [all(isinstance(r.get(c), (int, float, type(None))) for r in self.rows)
                   for c in cols]
        cells = [cols] + [[_fmt(r.get(c)) for c in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        print()
        for i, row in enumerate(cells):
            print(" | ".join(c.rjust(w) if i and num else c.ljust(w)
                             for c, w, num in zip(row, widths, numeric)).rstrip())
            if i == 0:
                print("-|-".join("-" * w for w in widths))
        for n in self.notes:
            print(f"note: {n}")
        line = json.dumps({**self.meta, "figures": self.rows, "notes": self.notes})
        print(line, flush=True)
        if self.json_path is not None:
            with open(self.json_path, "a") as f:
                f.write(line + "\n")


# ------------------------------------------------------------------ corpora


def librispeech(limit: int | None = None) -> list[tuple[str, Path, list[str]]]:
    """(utt, flac path, words) of the LibriSpeech hour in ../shared/corpora, by utterance id."""
    out = []
    for trans in sorted(LIBRISPEECH.glob("*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt, *words = line.split()
            out.append((utt, trans.parent / f"{utt}.flac", words))
    if not out:
        raise SystemExit(f"{LIBRISPEECH}: no LibriSpeech transcripts here (the benches read "
                         f"the shared corpora; see {CORPORA}/README.md)")
    return sorted(out)[:limit]


@functools.cache
def cmudict_words() -> frozenset[str]:
    return frozenset(re.sub(r"\(\d+\)$", "", f[0]).upper()
                     for f in map(str.split, CMUDICT.read_text(encoding="utf-8").splitlines())
                     if f)


def with_unk(words: list[str]) -> list[str]:
    """Words cmudict lacks become <UNK>."""
    return [w if w in cmudict_words() else "<UNK>" for w in words]


def make_lang(texts: dict[str, list[str]], out: Path, arpa: str | None = None):
    """(lang, texts with <UNK>): a dict dir for the words of `texts` (cmudict pronunciations
    without stress marks; words cmudict lacks become <UNK>, pronounced SPN, Kaldi's spoken
    noise) and its lang dir under `out`, with G from `arpa` if given."""
    texts = {u: with_unk(words) for u, words in texts.items()}
    prons = read_cmudict(CMUDICT, sorted({w for ws in texts.values() for w in ws} - {"<UNK>"}))
    d = out / "dict"
    write_lines(d / "lexicon.txt", ["<UNK> SPN"] + [f"{w} {' '.join(p)}" for w in sorted(prons)
                                                    for p in prons[w]])
    write_lines(d / "silence_phones.txt", ["SIL", "SPN"])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt",
                sorted({p for ps in prons.values() for pron in ps for p in pron}))
    write_lines(d / "extra_questions.txt", [])
    return prepare_lang(d, out / "lang", arpa=arpa), texts


# ------------------------------------------------------------------ training


def synthetic_chunks(frames: int, spec: dict, num_pdfs: int, chunk_size: int,
                     device: torch.device, seed: int = 0) -> ChunkSet:
    """A ChunkSet on `device` over random features and targets: utterances of 2-15 s whose
    lengths are multiples of chunk_size, so every chunk is full and frames/step is exact."""
    g = np.random.default_rng(seed)
    feats, targets, total = {}, {}, 0
    while total < frames:
        n = max(1, int(g.integers(200, 1500)) // chunk_size) * chunk_size
        utt = f"utt{len(feats):06d}"
        feats[utt] = g.standard_normal((n, FEAT_DIM), dtype=np.float32)
        targets[utt] = g.integers(0, num_pdfs, n)
        total += n
    a = spec["args"]
    return ChunkSet(feats, targets, a["left_context"], a["right_context"], chunk_size, device)


def new_members(spec: dict, num_pdfs: int, count: int, stacked: bool, device: torch.device,
                seed: int = 0):
    return make_members([spec] * count, [seed + k for k in range(count)], FEAT_DIM, num_pdfs,
                        stacked).to(device)


def training_step(members, data: ChunkSet, batch_size: int, distill: DistillConfig,
                  soft=None, lr: float = 1e-3, seed: int = 0):
    """A function doing one step of train_members' inner loop per call: gather a batch of
    chunks on the device, member logits under autocast, soft targets (`soft`: TeacherTargets or
    CachedTargets), kd_loss per member, backward, MemberAdam. Batches cycle through one
    shuffled order; the loop's per-step loss/accuracy bookkeeping is left out."""
    device = data.feats.device
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    batches = [b.to(device) for b in order.split(batch_size) if len(b) == batch_size]
    if not batches:
        raise ValueError(f"{len(data)} chunks: too few for one batch of {batch_size}")
    batches = itertools.cycle(batches)
    opt = MemberAdam(members.member_params(), len(members), lr)
    members.train()
    n = len(members)

    def step():
        x, y, rows = data.batch(next(batches))
        with runtime_policy(x.device).train_autocast():
            logits = members.center_logits(x, data.left, data.chunk_size)
        extra = soft(x, rows, data.left, data.chunk_size) if soft is not None else {}
        losses = torch.stack([kd_loss(logits[k], y, distill, **extra) for k in range(n)])
        opt.zero_grad()
        losses.sum().backward()
        opt.step()

    return step


def step_timing(quick: bool) -> dict:
    """time_per_call arguments for training steps: warm-up covers cuBLAS/allocator start-up."""
    return {"warmup": 2, "min_seconds": 0.3} if quick else {"warmup": 10, "min_seconds": 3.0}
