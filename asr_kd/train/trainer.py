"""Frame-level cross-entropy training with held-out validation, checkpoints and resume.

Schedule (Kaldi nnet1's "newbob" in spirit): Adam at `lr`; after an epoch whose validation
frame accuracy improves by less than `halving_threshold` (absolute %), the learning rate halves.
The checkpoint of the best validation epoch becomes the final model. Each epoch's checkpoint
holds model, optimizer, scheduler state and RNG, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from asr_kd.models import build_model
from asr_kd.train.chunks import ChunkSet
from asr_kd.utils.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    model: dict = field(default_factory=lambda: {"class": "mlp", "args": {}})
    epochs: int = 10
    batch_size: int = 256  # chunks per step
    chunk_size: int = 16  # frames per chunk
    lr: float = 1e-3
    weight_decay: float = 0.0
    halving_threshold: float = 0.5
    valid_fraction: float = 0.1
    seed: int = 0


def split_valid(utts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out a seeded random `fraction` of the utterances (at least one) for validation."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(sorted(utts)))
    n = max(1, int(round(fraction * len(order)))) if fraction > 0 else 0
    return sorted(order[n:]), sorted(order[:n])


@torch.no_grad()
def evaluate_chunks(model, data: ChunkSet, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, frame accuracy %) over every frame of `data`."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for idx in torch.arange(len(data), device=data.feats.device).split(batch_size):
        x, y = data.batch(idx)
        logits = _center(model, x, data)
        mask = y >= 0
        total_loss += float(F.cross_entropy(logits[mask].float(), y[mask], reduction="sum"))
        correct += int((logits.argmax(-1) == y)[mask].sum())
        count += int(mask.sum())
    return total_loss / max(count, 1), 100.0 * correct / max(count, 1)


def _center(model, x, data: ChunkSet) -> torch.Tensor:
    lengths = torch.full((x.shape[0],), x.shape[1], device=x.device)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        logits = model(x, lengths)
    return logits[:, data.left: data.left + data.chunk_size]


def _checkpoint(path: Path, model, opt, epoch, lr, best, history, gen):
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "lr": lr, "best": best, "history": history, "rng": gen.get_state()}, tmp)


def train_frame_ce(cfg: TrainConfig, feats: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                   num_pdfs: int, out_dir: Path, device: torch.device):
    """Train `cfg.model` on (feats, targets); returns (model with the best validation weights,
    training history). Checkpoints go to out_dir/epoch-N.pt; an existing one is resumed."""
    torch.manual_seed(cfg.seed)
    input_dim = next(iter(feats.values())).shape[1]
    model = build_model(cfg.model, input_dim, num_pdfs).to(device)
    train_utts, valid_utts = split_valid([u for u in feats if u in targets], cfg.valid_fraction,
                                         cfg.seed)
    lc, rc = model.left_context, model.right_context

    def chunkset(utts):
        return ChunkSet({u: feats[u] for u in utts}, targets, lc, rc, cfg.chunk_size, device)

    train, valid = chunkset(train_utts), chunkset(valid_utts)
    log.info("training %s (%d parameters) on %d frames, validating on %d frames",
             cfg.model["class"], sum(p.numel() for p in model.parameters()), train.num_frames,
             valid.num_frames)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    lr, best, history, start_epoch = cfg.lr, {"epoch": 0, "acc": -1.0}, [], 1

    done = sorted(out_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if done:
        ck = torch.load(done[-1], map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["rng"])
        lr, best, history, start_epoch = ck["lr"], ck["best"], ck["history"], ck["epoch"] + 1
        log.info("resuming from %s", done[-1])

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = torch.randperm(len(train), generator=gen).to(device)
        tot, nfr = 0.0, 0
        for idx in tqdm(order.split(cfg.batch_size), desc=f"epoch {epoch}", leave=False):
            x, y = train.batch(idx)
            logits = _center(model, x, train)
            loss = F.cross_entropy(logits.float().reshape(-1, num_pdfs), y.reshape(-1),
                                   ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = int((y >= 0).sum())
            tot, nfr = tot + loss.detach().item() * n, nfr + n
        v_loss, v_acc = evaluate_chunks(model, valid, cfg.batch_size * 4)
        prev = history[-1]["valid_acc"] if history else -math.inf
        history.append({"epoch": epoch, "lr": lr, "train_loss": tot / max(nfr, 1),
                        "valid_loss": v_loss, "valid_acc": v_acc,
                        "seconds": round(time.time() - t0, 2)})
        log.info("epoch %d: lr %.2e train CE %.4f valid CE %.4f valid frame acc %.2f%% (%.1fs)",
                 epoch, lr, tot / max(nfr, 1), v_loss, v_acc, time.time() - t0)
        if v_acc > best["acc"]:
            best = {"epoch": epoch, "acc": v_acc}
        if v_acc - prev < cfg.halving_threshold:
            lr *= 0.5
        _checkpoint(out_dir / f"epoch-{epoch}.pt", model, opt, epoch, lr, best, history, gen)

    ck = torch.load(out_dir / f"epoch-{best['epoch']}.pt", map_location=device, weights_only=True)
    model.load_state_dict(ck["model"])
    return model, history
