"""Specialists over confusable pdfs (Hinton, Vinyals & Dean 2015, section 5): the clusters,
and the specialists trained side by side.

Clusters come from the covariance of the generalist's predicted distributions over the
training frames: pdfs it tends to predict together have similar covariance columns. The
columns, scaled to unit length so that frequent pdfs (silence) do not dominate the distances,
are clustered by k-means into clusters of `cluster_size` pdfs each (see `confusion_clusters`;
they overlap where the clusters have more room than there are pdfs).

A specialist starts as a copy of the generalist whose output layer keeps its cluster's rows
and gains a dustbin row for every other pdf. It trains on batches drawn half from frames
aligned to its cluster and half from the rest; the resulting bias towards its cluster is
undone at test time by adding log((1 - f) / f) to the dustbin logit (f: the cluster's share of
the training frames). All specialists have one shape, so they train as one stacked model on a
GPU (each with its own batch) and in a loop elsewhere, with the same numbers, like an ensemble.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asr_kd.acoustic import DnnAcousticModel, SpecialistAcousticModel
from asr_kd.features import as_tensors
from asr_kd.nets.registry import build_model
from asr_kd.train.chunks import ChunkSet
from asr_kd.train.distill import DistillConfig, kd_loss
from asr_kd.train.members import crop_center, group_members
from asr_kd.train.trainer import (
    MemberAdam,
    TrainConfig,
    best_models,
    end_epoch,
    resume,
    save_checkpoint,
    split_utts,
)
from asr_kd.utils.io import write_json
from asr_kd.utils.progress import progress
from asr_kd.utils.runtime import runtime_policy
from asr_kd.utils.sync_audit import sync_region

log = logging.getLogger(__name__)


@dataclass
class SpecialistConfig:
    num_clusters: int = 8
    cluster_size: int = 12  # pdfs per specialist (plus its dustbin)
    top_n: int = 2  # the generalist's top-n pdfs of a frame pick its active specialists
    combine_steps: int = 50  # gradient steps of the KL combination per batch of frames
    kmeans_iters: int = 100
    epochs: int = 6
    batch_size: int = 256  # frames per step and specialist, half of them from its cluster
    epoch_frames: int = 0  # frames per epoch and specialist; 0: twice a cluster's mean frames
    valid_frames: int = 2048  # balanced validation sample per specialist
    lr: float = 3e-4
    # Soft targets from the generalist (seen through the specialist's classes) beside the hard
    # ones, as the paper suggests against specialists overfitting: alpha's weight, at T.
    alpha: float = 0.0
    temperature: float = 2.0
    halving_threshold: float = 0.5
    valid_fraction: float = 0.1  # as the generalist's: the same held-out utterances
    stacked: bool | None = None  # None: as asr_kd.utils.runtime decides for the device
    seed: int = 0

    def __post_init__(self):
        if self.num_clusters < 1 or self.cluster_size < 1 or self.top_n < 1:
            raise ValueError(f"specialists: num_clusters, cluster_size and top_n must be >= 1 "
                             f"(got {self})")
        _ = self.distill  # DistillConfig checks alpha and temperature

    @property
    def distill(self) -> DistillConfig:
        return DistillConfig(alpha=self.alpha, temperature=self.temperature)


def kmeans(x: torch.Tensor, k: int, seed: int, iters: int) -> torch.Tensor:
    """Centroids [k, D] of rows x [N, D]: k-means++ seeding, then Lloyd's iterations."""
    gen = torch.Generator().manual_seed(seed)
    centroids = [x[torch.randint(len(x), (1,), generator=gen)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centroids)).min(1).values.pow(2)
        if float(d2.sum()) == 0:
            break  # fewer distinct points than k
        centroids.append(x[torch.multinomial(d2 / d2.sum(), 1, generator=gen)].squeeze(0))
    c = torch.stack(centroids)
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        new = torch.stack([x[assign == j].mean(0) if bool((assign == j).any()) else c[j]
                           for j in range(len(c))])
        if torch.equal(new, c):
            break
        c = new
    return c


def confusion_clusters(probs: torch.Tensor, num_clusters: int, cluster_size: int,
                       seed: int = 0, iters: int = 100) -> list[list[int]]:
    """Clusters of pdfs from the generalist's posteriors probs [N, P] over training frames.

    k-means gives the centroids; pdfs are then dealt to them nearest pair first, at most
    `cluster_size` to a centroid (plain nearest-centroid clusters come out lopsided: a few
    big ones and many of two or three pdfs), and a cluster left short is filled up with the
    nearest pdfs it lacks, so every specialist has `cluster_size` pdfs. With num_clusters x
    cluster_size >= P every pdf is in a cluster; the surplus is overlap."""
    num_pdfs = probs.shape[1]
    if not 1 <= cluster_size < num_pdfs:
        raise ValueError(f"specialists: cluster_size must be between 1 and {num_pdfs - 1} (the "
                         f"pdfs minus one, for the dustbin), got {cluster_size}")
    p = probs.double()
    c = p - p.mean(0)
    cov = c.T @ c / max(len(p) - 1, 1)
    cols = cov / cov.norm(dim=0, keepdim=True).clamp_min(1e-12)  # row j: pdf j's column
    centroids = kmeans(cols, min(num_clusters, num_pdfs), seed, iters)
    dist = torch.cdist(cols, centroids)  # [P, K]
    clusters: list[list[int]] = [[] for _ in range(len(centroids))]
    dealt = set()
    for flat in dist.flatten().argsort(stable=True).tolist():
        pdf, k = divmod(flat, len(centroids))
        if pdf not in dealt and len(clusters[k]) < cluster_size:
            clusters[k].append(pdf)
            dealt.add(pdf)
    out: list[list[int]] = []
    for k, cluster in enumerate(clusters):
        if not cluster:
            continue
        nearest = [i for i in dist[:, k].argsort(stable=True).tolist() if i not in cluster]
        cluster = sorted(cluster + nearest[:cluster_size - len(cluster)])
        if cluster not in out:
            out.append(cluster)
    return out


def specialist_net(generalist: DnnAcousticModel, cluster: list[int], input_dim: int):
    """The generalist's network with an output layer over `cluster` + a dustbin: the cluster's
    rows copied, the dustbin's the mean of the other rows (its bias their logsumexp)."""
    num_pdfs, size = len(generalist.log_prior), len(cluster) + 1
    net = build_model(generalist.spec, input_dim, size)
    src, state = generalist.net.state_dict(), net.state_dict()
    inside = torch.tensor(cluster)
    rest = torch.tensor(sorted(set(range(num_pdfs)) - set(cluster)))
    for name, t in state.items():
        g = src[name].to(t.device)
        if g.shape == t.shape:
            state[name] = g.clone()
        elif g.shape[0] == num_pdfs and t.shape == (size, *g.shape[1:]):
            dust = g[rest].logsumexp(0) if g.dim() == 1 else g[rest].mean(0)
            state[name] = torch.cat([g[inside], dust[None]])
        else:
            raise ValueError(f"model {generalist.spec['class']!r}: cannot make a specialist "
                             f"from the generalist: parameter {name} has shape "
                             f"{tuple(g.shape)}, the specialist's {tuple(t.shape)}")
    net.load_state_dict(state)
    return net


@torch.no_grad()
def generalist_posteriors(generalist: DnnAcousticModel, feats: dict[str, torch.Tensor],
                          utts: list[str], batch_size: int = 16) -> torch.Tensor:
    """[N, P] posteriors over the frames of `utts`, back to back in that order."""
    out = []
    for i in progress(range(0, len(utts), batch_size), "generalist", unit="batches"):
        out += [lp.exp().cpu() for lp in
                generalist.log_posteriors([feats[u] for u in utts[i:i + batch_size]])]
    return torch.cat(out)


def _balanced(gen: torch.Generator, inside: list[torch.Tensor], outside: list[torch.Tensor],
              half: int) -> torch.Tensor:
    """[M, 2 * half] frame indices per specialist: half from its cluster, half from the rest
    (drawn with replacement)."""
    rows = []
    for a, b in zip(inside, outside):
        rows.append(torch.cat([a[torch.randint(len(a), (half,), generator=gen)],
                               b[torch.randint(len(b), (half,), generator=gen)]]))
    return torch.stack(rows)


def _clusters(out_dir: Path, cfg: SpecialistConfig, generalist, feats, utts) -> list[list[int]]:
    """The clusters, computed once (out_dir/clusters.json), so a resumed run keeps them."""
    path = out_dir / "clusters.json"
    settings = {"num_clusters": cfg.num_clusters, "cluster_size": cfg.cluster_size,
                "seed": cfg.seed, "kmeans_iters": cfg.kmeans_iters}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") == settings:
            return old["clusters"]
        log.info("%s was made with %s; new clusters, and training from the start", path,
                 old.get("settings"))
        for ck in out_dir.glob("epoch-*.pt"):
            ck.unlink()
    probs = generalist_posteriors(generalist, feats, utts)
    clusters = confusion_clusters(probs, cfg.num_clusters, cfg.cluster_size, cfg.seed,
                                  cfg.kmeans_iters)
    write_json(path, {"clusters": clusters, "frames": len(probs), "settings": settings})
    return clusters


def train_specialists(cfg: SpecialistConfig, feats: dict[str, np.ndarray],
                      targets: dict[str, np.ndarray], generalist: DnnAcousticModel,
                      out_dir, device: torch.device):
    """(SpecialistAcousticModel with each specialist's best validation epoch, history)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_pdfs = len(generalist.log_prior)
    input_dim = next(iter(feats.values())).shape[1]
    train_utts, valid_utts = split_utts([u for u in feats if u in targets],
                                        TrainConfig(valid_fraction=cfg.valid_fraction,
                                                    seed=cfg.seed))
    clusters = _clusters(out_dir, cfg, generalist, as_tensors(feats), sorted(train_utts))
    net = generalist.net
    sets = [ChunkSet({u: feats[u] for u in utts}, targets, net.left_context, net.right_context,
                     1, device) for utts in (train_utts, valid_utts)]
    train, valid = sets
    m = len(clusters)
    in_cluster = torch.zeros(m, num_pdfs, dtype=torch.bool, device=device)
    local = torch.empty(m, num_pdfs, dtype=torch.long, device=device)
    for k, c in enumerate(clusters):
        in_cluster[k, c] = True
        local[k] = len(c)  # the dustbin
        local[k, c] = torch.arange(len(c), device=device)

    def split(data: ChunkSet):
        hit = in_cluster[:, data.targets]  # [M, frames]
        return ([h.nonzero().squeeze(1) for h in hit], [(~h).nonzero().squeeze(1) for h in hit])

    (t_in, t_out), (v_in, v_out) = split(train), split(valid)
    for k, (a, b) in enumerate(zip(t_in + v_in, t_out + v_out)):
        if len(a) == 0 or len(b) == 0:
            raise ValueError(f"specialist {k % m + 1} (pdfs {clusters[k % m]}): no "
                             f"{'training' if k < m else 'validation'} frames "
                             f"{'in' if len(a) == 0 else 'outside'} its cluster")
    share = [len(a) / train.num_frames for a in t_in]
    offsets = [math.log((1 - f) / f) for f in share]
    half = cfg.batch_size // 2
    epoch_frames = cfg.epoch_frames or round(2 * float(np.mean([len(a) for a in t_in])))
    steps = max(1, math.ceil(epoch_frames / (2 * half)))
    v_idx = _balanced(torch.Generator().manual_seed(cfg.seed + 1), v_in, v_out,
                      cfg.valid_frames // 2)
    # Each step draws its frames on the host (the CPU generator a resumed run restores) from
    # host copies of the frame lists, and sends the [M, B] indices over once.
    t_in, t_out = [a.cpu() for a in t_in], [b.cpu() for b in t_out]

    cluster_ids = torch.tensor(clusters, device=device)  # [M, cluster_size]
    net.eval()
    torch.manual_seed(cfg.seed)  # the dropout masks (a resumed run restores the state)
    nets = [specialist_net(generalist, c, input_dim).to(device) for c in clusters]
    group = group_members(nets, [generalist.spec] * m,
                          runtime_policy(device, cfg.stacked).stacked).to(device)
    opt = MemberAdam(group.member_params(), m, cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, history, start_epoch = resume(out_dir, group, opt, gen, device)
    log.info("training %d specialists (%s, %d pdfs + dustbin each; clusters hold %s%% of the "
             "training frames) from %d utterances, %d steps of %d frames per epoch",
             m, type(group).__name__, cfg.cluster_size, ", ".join(f"{100 * f:.1f}" for f in share),
             len(train_utts), steps, 2 * half)

    shift = torch.tensor(offsets, device=device)

    def forward(data: ChunkSet, idx: torch.Tensor):
        x, y, _ = data.batch(idx.flatten())
        x = x.view(m, idx.shape[1], *x.shape[1:])
        y = local.gather(1, y.view(m, -1))
        return group.center_logits(x, data.left, 1).squeeze(2).float(), y, x  # [M, B, S+1]

    @torch.no_grad()
    def soft_targets(x: torch.Tensor, left: int) -> torch.Tensor:
        """[M, B, S+1] log soft targets: the generalist's logits gathered into each cluster +
        dustbin, moved to the balanced sampling's prior, at temperature T."""
        z = crop_center(net, x.flatten(0, 1), left, 1).view(m, x.shape[1], -1).float()
        dust = z.masked_fill(in_cluster[:, None], float("-inf")).logsumexp(-1, keepdim=True)
        inside = z.gather(2, cluster_ids[:, None].expand(-1, z.shape[1], -1))
        v = torch.cat([inside, dust - shift[:, None, None]], dim=-1)
        return torch.log_softmax(v / cfg.temperature, dim=-1)

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.time()
        group.train()
        tot = torch.zeros(m, device=device)  # read once, after the epoch
        for _ in progress(range(steps), f"specialists epoch {epoch}", unit="steps"):
            with sync_region("specialist step"):
                idx = _balanced(gen, t_in, t_out, half).to(device)
                logits, y, x = forward(train, idx)
                soft = soft_targets(x, train.left) if cfg.alpha > 0 else [None] * m
                losses = torch.stack([kd_loss(logits[k], y[k], cfg.distill, soft_logp=soft[k])
                                      for k in range(m)])
                opt.zero_grad()
                losses.sum().backward()
                opt.step()
                tot += losses.detach()
        tot = tot.cpu()
        group.eval()
        with torch.no_grad():
            logits, y, _ = forward(valid, v_idx.to(device))
            v_loss = [float(F.cross_entropy(logits[k], y[k])) for k in range(m)]
            v_acc = (100.0 * (logits.argmax(-1) == y).float().mean(1)).tolist()
        rec = {"epoch": epoch, "seconds": round(time.time() - t0, 2), "members": [
            {"lr": opt.lr[k], "train_loss": float(tot[k]) / steps, "valid_loss": v_loss[k],
             "valid_acc": v_acc[k]} for k in range(m)]}
        end_epoch(rec, history, best, opt, cfg.halving_threshold)
        log.info("specialists epoch %d (%.1fs): balanced valid acc %s", epoch, time.time() - t0,
                 " ".join(f"{a:.1f}" for a in v_acc))
        save_checkpoint(out_dir / f"epoch-{epoch}.pt", group, opt, epoch, best, history, gen,
                        device)

    counts = torch.bincount(train.targets.cpu(), minlength=num_pdfs).double()
    specialists = []
    for net_k, c in zip(best_models(group, best, out_dir, device), clusters):
        inside = counts[c]
        pdf_counts = torch.cat([inside, (counts.sum() - inside.sum())[None]]).numpy()
        specialists.append(DnnAcousticModel(net_k, generalist.spec, pdf_counts))
    model = SpecialistAcousticModel(generalist, specialists, clusters, offsets, cfg.top_n,
                                    cfg.combine_steps)
    return model, history
