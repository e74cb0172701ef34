"""Frame-level training of one or several acoustic models at once, on hard or soft targets.

One loop serves teachers (E members, cross-entropy on the alignments), students (one member,
the distillation loss against an ensemble) and baselines. Members are stacked into one module
when they share a shape and the device is a GPU, else run in a loop; each member keeps its own
learning rate, so both forms compute the same numbers.

Schedule (Kaldi nnet1's "newbob" in spirit): Adam at `lr`; after an epoch whose validation
frame accuracy improves by less than `halving_threshold` (absolute %), that member's learning
rate halves. Each member ends with the weights of its best validation epoch. Every epoch's
checkpoint holds the members, optimizer state, learning rates and RNG states (data order and
dropout), so a killed run resumes where it stopped and finishes with the same numbers.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asr_kd.acoustic.soft_targets import combine_log_probs
from asr_kd.train.augment import AugmentConfig, spec_augment
from asr_kd.train.chunks import ChunkSet
from asr_kd.train.distill import DistillConfig, kd_loss, zero_mean_logits
from asr_kd.train.members import LoopMembers, StackedMLP, make_members
from asr_kd.train.transfer import IGNORE, TransferChunks, resident_mb
from asr_kd.utils.io import save_torch
from asr_kd.utils.progress import progress
from asr_kd.utils.runtime import RuntimePolicy, runtime_policy
from asr_kd.utils.sync_audit import sync_region

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    # One model spec ({class, args}) for every member, or a list cycled over the members.
    model: dict | list = field(default_factory=lambda: {"class": "mlp", "args": {}})
    members: int = 1
    stacked: bool | None = None  # None: as asr_kd.utils.runtime decides for the device
    epochs: int = 10
    batch_size: int = 256  # chunks per step
    chunk_size: int = 16  # frames per chunk
    lr: float = 1e-3
    weight_decay: float = 0.0
    halving_threshold: float = 0.5
    valid_fraction: float = 0.1
    utt_fraction: float = 1.0  # train on this share of the (non-validation) utterances
    seed: int = 0
    # The seed of the validation split (None: `seed`). A student given its teachers' seed
    # validates on the utterances no teacher trained on, whatever its own seed.
    split_seed: int | None = None
    # Cross-fitted teachers (train-teachers with folds: K): K ensembles, ensemble k trained
    # without fold k of the training utterances, so that each utterance's soft targets come
    # from teachers that never heard it. `fold` (1..K) is the one a run leaves out; 0: none.
    folds: int = 0
    fold: int = 0
    distill: DistillConfig = field(default_factory=DistillConfig)
    # SpecAugment-style masks on every training window (asr_kd.train.augment); off by default.
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        if self.stacked not in (None, True, False):
            raise ValueError(f"stacked: expected true, false or null (auto), got "
                             f"{self.stacked!r}")
        if not 0 < self.utt_fraction <= 1:
            raise ValueError(f"utt_fraction: expected a share in (0, 1], got "
                             f"{self.utt_fraction!r}")
        if self.folds == 1 or self.folds < 0 or not 0 <= self.fold <= self.folds:
            raise ValueError(f"folds: expected 0 (none) or at least 2, and fold in 0..folds; "
                             f"got folds={self.folds!r}, fold={self.fold!r}")

    def member_specs(self) -> list[dict]:
        specs = self.model if isinstance(self.model, list) else [self.model]
        return [specs[k % len(specs)] for k in range(self.members)]

    def member_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.members)]


# asr-kd perturb-speed's and perturb-vtln's copies: sp0.9-<utt>, vtln1.1-sp0.9-<utt>, ...
COPY_PREFIXES = re.compile(r"^(?:(?:sp|vtln)[0-9.]+-)+")


def original_utt(utt: str) -> str:
    """The utterance a perturbed copy was made from (sp0.9-<utt>, vtln1.1-sp0.9-<utt> ->
    <utt>), else itself."""
    return COPY_PREFIXES.sub("", utt)


def split_utts(utts: list[str], cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """(train, valid): a `valid_fraction` held out (at least one utterance), then an
    `utt_fraction` of the rest kept for training, both seeded by `split_seed` (else `seed`);
    with `fold` set, that fold of the rest (`cross_folds`) is left out as well. The held-out
    set does not depend on `utt_fraction`, so students trained on a share validate on the
    same utterances. The speed-perturbed copies of an utterance (sp0.9-<utt>) go
    wherever it goes: a copy of a held-out utterance in training would leak it."""
    groups: dict[str, list[str]] = {}
    for u in sorted(utts):
        groups.setdefault(original_utt(u), []).append(u)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    rng = np.random.default_rng(split_seed)
    order = [str(u) for u in rng.permutation(sorted(groups))]
    n_valid = max(1, round(cfg.valid_fraction * len(order))) if cfg.valid_fraction > 0 else 0
    valid, rest = order[:n_valid], order[n_valid:]
    if cfg.utt_fraction < 1.0:
        keep = max(1, round(cfg.utt_fraction * len(rest)))
        rest = [str(u) for u in np.random.default_rng(split_seed + 1).permutation(rest)[:keep]]
    if cfg.fold:
        left_out = set(cross_folds(rest, cfg.folds, split_seed)[cfg.fold - 1])
        rest = [g for g in rest if g not in left_out]
    return (sorted(u for g in rest for u in groups[g]),
            sorted(u for g in valid for u in groups[g]))


def cross_folds(groups: list[str], folds: int, split_seed: int) -> list[list[str]]:
    """The training utterances (original ids: a speed copy goes with its original) dealt into
    `folds` folds of nearly equal size, in an order seeded by `split_seed`."""
    order = [str(g) for g in np.random.default_rng(split_seed + 2).permutation(sorted(groups))]
    return [sorted(order[i::folds]) for i in range(folds)]


class MemberAdam:
    """Adam whose learning rate is per member: params are (tensor, k) for member k's own tensor,
    or (tensor, None) for a stacked tensor whose first dimension runs over the members."""

    def __init__(self, params, num_members: int, lr: float, weight_decay: float = 0.0,
                 betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr = [lr] * num_members
        self.weight_decay, self.betas, self.eps, self.t = weight_decay, betas, eps, 0
        self._lr_cache = None
        self.m = [torch.zeros_like(p) for p, _ in params]
        self.v = [torch.zeros_like(p) for p, _ in params]

    def _lr_tensor(self, p: torch.Tensor) -> torch.Tensor:
        """The members' learning rates as a tensor on p's device, copied there only when they
        change (once per halving, not every step: a host-to-device copy makes the step wait)."""
        key = (tuple(self.lr), p.device, p.dtype)
        if self._lr_cache is None or self._lr_cache[0] != key:
            self._lr_cache = (key, torch.tensor(self.lr, device=p.device, dtype=p.dtype))
        return self._lr_cache[1]

    def zero_grad(self):
        for p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for (p, k), m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(self.eps)
            if k is None:
                step = m * (self._lr_tensor(p).view(-1, *[1] * (p.dim() - 1)) / bc1)
            else:
                step = m * (self.lr[k] / bc1)
            p.addcdiv_(step, denom, value=-1.0)

    def state_dict(self) -> dict:
        return {"t": self.t, "lr": list(self.lr), "m": self.m, "v": self.v}

    def load_state_dict(self, state: dict) -> None:
        self.t, self.lr = state["t"], list(state["lr"])
        for dst, src in zip(self.m + self.v, state["m"] + state["v"]):
            dst.copy_(src)


class TeacherTargets:
    """Soft targets for a batch, from teachers run on the same window (`online`)."""

    def __init__(self, teachers: LoopMembers | StackedMLP, cfg: DistillConfig,
                 policy: RuntimePolicy):
        self.teachers, self.cfg, self.policy = teachers.eval(), cfg, policy

    @torch.no_grad()
    def __call__(self, x, rows, left: int, chunk: int) -> dict:
        with self.policy.train_autocast():
            z = self.teachers.center_logits(x, left, chunk)
        if self.cfg.mode == "mse":
            return {"teacher_logits": zero_mean_logits(z)}
        return {"soft_logp": combine_log_probs(z, self.cfg.temperature, self.cfg.combine)}


class CachedTargets:
    """Soft targets for a batch, looked up in a top-k cache aligned with a ChunkSet's frames."""

    def __init__(self, ids: torch.Tensor, logp: torch.Tensor, mass: torch.Tensor):
        self.ids, self.logp, self.mass = ids, logp, mass

    def __call__(self, x, rows, left: int, chunk: int) -> dict:
        return {"soft_ids": self.ids[rows], "soft_logp": self.logp[rows],
                "soft_mass": self.mass[rows]}


class FrameStats:
    """Per member: summed loss and correct frames, and the frame count, kept on the device
    during an epoch (adding them up reads nothing back) and read once at its end."""

    def __init__(self, n: int, device):
        self.loss = torch.zeros(n, device=device)
        self.correct = torch.zeros(n, device=device)
        self.frames = torch.zeros((), device=device)

    def add(self, loss_sums: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """loss_sums [n]: each member's loss summed over the labelled frames of y [B, C];
        logits [n, B, C, P]."""
        mask = y >= 0
        self.loss += loss_sums.detach().float()
        self.correct += ((logits.detach().argmax(-1) == y) & mask).sum((-2, -1))
        self.frames += mask.sum()

    def read(self) -> tuple[list[float], list[float]]:
        """(mean loss, frame accuracy %) per member."""
        frames = max(float(self.frames), 1.0)
        return (self.loss / frames).tolist(), (100.0 * self.correct / frames).tolist()


@torch.no_grad()
def evaluate_members(members, data: ChunkSet, batch_size: int) -> tuple[list[float], list[float]]:
    """Per member: (mean cross-entropy, frame accuracy %) over every frame of `data`, in
    float32 (scoring never runs under autocast)."""
    members.eval()
    stats = FrameStats(len(members), data.feats.device)
    for idx in torch.arange(len(data), device=data.feats.device).split(batch_size):
        with sync_region("validation batch"):
            x, y, _ = data.batch(idx)
            logits = members.center_logits(x, data.left, data.chunk_size).float()
            labels = torch.where(y >= 0, y, IGNORE).flatten()
            ce = torch.stack([F.cross_entropy(z.flatten(0, -2), labels, ignore_index=IGNORE,
                                              reduction="sum") for z in logits])
            stats.add(ce, logits, y)
    return stats.read()


def _rng_state(device: torch.device) -> dict:
    """torch's global generators, which draw the dropout masks (the data order has its own)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _epoch_of(checkpoint: Path) -> int:
    """N of out_dir/epoch-N.pt."""
    return int(checkpoint.stem.split("-")[1])


def save_checkpoint(path: Path, members, opt: MemberAdam, epoch, best, history, gen, device):
    """Write epoch `epoch`'s checkpoint as `path` (out_dir/epoch-N.pt), then delete the older
    ones that are no member's best epoch: what remains is all a resumed run and `best_models`
    read (a run of many members and epochs would otherwise fill the disk)."""
    path = Path(path)
    save_torch(path, {"members": members.state_dict(), "optimizer": opt.state_dict(),
                      "epoch": epoch, "best": best, "history": history, "rng": gen.get_state(),
                      "torch_rng": _rng_state(device)})
    keep = {epoch} | {b["epoch"] for b in best}
    for old in path.parent.glob("epoch-*.pt"):
        if _epoch_of(old) not in keep:
            old.unlink()


def resume(out_dir: Path, members, opt: MemberAdam, gen: torch.Generator, device):
    """(best, history, first epoch to run): from the newest out_dir/epoch-N.pt when there is
    one, which also restores the members, optimizer and random generators; else a fresh start."""
    done = sorted(Path(out_dir).glob("epoch-*.pt"), key=_epoch_of)
    if not done:
        return [{"epoch": 0, "acc": -1.0} for _ in range(len(members))], [], 1
    # Loaded to the CPU, as the generators' states must be; the members' and optimizer's
    # tensors are copied onto the device by their load_state_dict.
    ck = torch.load(done[-1], map_location="cpu", weights_only=True)
    members.load_state_dict(ck["members"])
    opt.load_state_dict(ck["optimizer"])
    gen.set_state(ck["rng"])
    if "torch_rng" in ck:  # checkpoints from before it was kept have none
        _set_rng_state(ck["torch_rng"], device)
    log.info("resuming from %s", done[-1])
    return ck["best"], ck["history"], ck["epoch"] + 1


def end_epoch(rec: dict, history: list, best: list[dict], opt: MemberAdam,
              halving_threshold: float) -> None:
    """Record an epoch (rec["members"][k]["valid_acc"] per member), keep each member's best
    epoch, and halve the learning rate of a member that improved by less than the threshold."""
    prev = [h["valid_acc"] for h in history[-1]["members"]] if history else None
    for k, r in enumerate(rec["members"]):
        if r["valid_acc"] > best[k]["acc"]:
            best[k] = {"epoch": rec["epoch"], "acc": r["valid_acc"]}
        if prev is not None and r["valid_acc"] - prev[k] < halving_threshold:
            opt.lr[k] *= 0.5
    history.append(rec)


def train_members(cfg: TrainConfig, feats: dict[str, np.ndarray], targets: dict[str, np.ndarray],
                  num_pdfs: int, out_dir: Path, device: torch.device, teachers=None,
                  cache=None, transfer=None):
    """Train cfg.members models; returns (list of models with their best validation weights,
    history). Checkpoints go to out_dir/epoch-N.pt; the newest one is resumed.

    teachers: LoopMembers/StackedMLP giving soft targets on the fly (cfg.distill.source online);
    cache: callable (utts) -> (ids, logp, mass) per-frame top-k soft targets in that order;
    transfer: (FrameStores, their memory-mapped top-k caches or None when online): transfer
    chunks join every step (cfg.distill.transfer_weight), with the soft term only.
    """
    out_dir = Path(out_dir)
    input_dim = next(iter(feats.values())).shape[1]
    policy = runtime_policy(device, cfg.stacked)
    members = make_members(cfg.member_specs(), cfg.member_seeds(), input_dim, num_pdfs,
                           policy.stacked).to(device)
    train_utts, valid_utts = split_utts([u for u in feats if u in targets], cfg)
    lc, rc = members.left_context, members.right_context
    if teachers is not None:
        lc, rc = max(lc, teachers.left_context), max(rc, teachers.right_context)

    def chunkset(utts):
        return ChunkSet({u: feats[u] for u in utts}, targets, lc, rc, cfg.chunk_size, device)

    train, valid = chunkset(train_utts), chunkset(valid_utts)
    soft = None
    if cfg.distill.uses_teachers:
        if cfg.distill.source == "topk":
            soft = CachedTargets(*[t.to(device) for t in cache(train.utts)])
        else:
            soft = TeacherTargets(teachers.to(device), cfg.distill, policy)
    tchunks, n_transfer = None, cfg.distill.transfer_chunks(cfg.batch_size)
    if transfer is not None:
        stores, stores_soft = transfer
        # A perturbed copy of a validation utterance (sp0.9-<utt>) in a transfer set would
        # show the student what it is validated on, as split_utts keeps from the labelled set.
        held = {original_utt(u) for u in valid_utts}
        tchunks = TransferChunks(stores, lc, rc, cfg.chunk_size, soft=stores_soft,
                                 held_out=lambda u: original_utt(u) in held)
    n = len(members)
    log.info("training %d member(s) (%s; %s parameters) on %d utterances / %d frames, "
             "validating on %d frames; distill %s", n, type(members).__name__,
             " + ".join(f"{sum(p.numel() for p in m.parameters()):,}"
                        for m in members.to_models()),
             len(train_utts), train.num_frames, valid.num_frames,
             cfg.distill if soft else "off")
    if tchunks is not None:
        log.info("transfer sets: %d frames in %d chunks, %d chunks beside every %d labelled "
                 "ones; %d utterances left out (copies of validation ones); resident memory "
                 "%.0f MB", tchunks.num_frames, len(tchunks), n_transfer, cfg.batch_size,
                 tchunks.held_out_utts, resident_mb())
    opt = MemberAdam(members.member_params(), n, cfg.lr, cfg.weight_decay)
    # On a share of the data an epoch passes over it 1/share times, so that it takes as many
    # steps as on all of it and the schedule (and Table 5's comparison) means the same.
    repeats = max(1, round(1 / cfg.utt_fraction))
    gen = torch.Generator().manual_seed(cfg.seed)
    best, history, start_epoch = resume(out_dir, members, opt, gen, device)

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        members.train()
        order = torch.cat([torch.randperm(len(train), generator=gen)
                           for _ in range(repeats)]).to(device)
        stats = FrameStats(n, device)
        steps = order.split(cfg.batch_size)
        if tchunks is not None:  # this epoch's transfer chunks, drawn on from the last epoch's
            tdraws = tchunks.draws(cfg.seed, (epoch - 1) * len(steps) * n_transfer,
                                   len(steps) * n_transfer).reshape(len(steps), n_transfer)
        for step, idx in enumerate(progress(steps, f"epoch {epoch}", unit="steps")):
            with sync_region("train step"):
                x, y, rows = train.batch(idx)
                extra = soft(x, rows, train.left, train.chunk_size) \
                    if isinstance(soft, CachedTargets) else {}
                if tchunks is not None:
                    xt, yt, extra_t = tchunks.batch(tdraws[step], device)
                    x, y = torch.cat([x, xt]), torch.cat([y, yt])
                    extra = {k: torch.cat([v, extra_t[k]]) for k, v in extra.items()}
                x = spec_augment(x, cfg.augment)
                if isinstance(soft, TeacherTargets):
                    extra = soft(x, None, train.left, train.chunk_size)
                with policy.train_autocast():
                    logits = members.center_logits(x, train.left, train.chunk_size)
                losses = torch.stack([kd_loss(logits[k], y, cfg.distill, **extra)
                                      for k in range(n)])
                opt.zero_grad()
                losses.sum().backward()
                opt.step()
                # kd_loss is a mean over the step's frames (transfer ones too); the epoch's
                # train_loss weights each step by its labelled frames, as it always has.
                stats.add(losses * (y >= 0).sum(), logits, y)
        t_loss, t_acc = stats.read()
        v_loss, v_acc = evaluate_members(members, valid, cfg.batch_size * 4)
        rec = {"epoch": epoch, "seconds": round(time.time() - t0, 2), "members": [
            {"lr": opt.lr[k], "train_loss": t_loss[k], "train_acc": t_acc[k],
             "valid_loss": v_loss[k], "valid_acc": v_acc[k]} for k in range(n)]}
        end_epoch(rec, history, best, opt, cfg.halving_threshold)
        log.info("epoch %d (%.1fs): %s", epoch, time.time() - t0, "; ".join(
            f"member {k + 1} lr {r['lr']:.1e} train loss {r['train_loss']:.3f} acc "
            f"{r['train_acc']:.2f}% valid CE {r['valid_loss']:.3f} acc {r['valid_acc']:.2f}%"
            for k, r in enumerate(rec["members"])))
        save_checkpoint(out_dir / f"epoch-{epoch}.pt", members, opt, epoch, best, history, gen,
                        device)

    return best_models(members, best, out_dir, device), history


def best_models(members, best: list[dict], out_dir: Path, device) -> list[torch.nn.Module]:
    """Each member with the weights of its best validation epoch."""
    states = {}
    for epoch in sorted({b["epoch"] for b in best}):
        ck = torch.load(out_dir / f"epoch-{epoch}.pt", map_location="cpu", weights_only=True)
        members.load_state_dict(ck["members"])
        for k, b in enumerate(best):
            if b["epoch"] == epoch:
                states[k] = members.member_state(k)
    for k, state in states.items():
        members.load_member_state(k, state)
    return [m.eval() for m in members.to_models()]
