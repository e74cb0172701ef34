"""The host-sync audit (asr_kd.utils.sync_audit) and the loops it proves sync-free on the CPU:
a teacher training step (loop and stacked members), a distillation step with online teachers
and with the top-k cache, both with transfer chunks and SpecAugment masks, validation batches,
specialist steps, the GMM's accumulation and the Viterbi alignment's frames.
Counts outside the loops are printed, not asserted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asr_kd.hmm.align import viterbi_align
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.train.augment import AugmentConfig
from asr_kd.train.distill import DistillConfig
from asr_kd.train.members import make_members
from asr_kd.train.specialists import SpecialistConfig, train_specialists
from asr_kd.train.trainer import TrainConfig, train_members
from asr_kd.train.transfer import FrameStore, write_frame_store
from asr_kd.utils.sync_audit import SyncAudit, sync_region
from tests.test_distill import _yesno_feats
from tests.test_graphs_and_alignment import _viterbi_inputs
from tests.test_specialists import P, _generalist

CPU = torch.device("cpu")
SMALL = [{"class": "tdnn", "args": {"hidden_dim": 16, "layers": [[3, 1], [3, 2]]}},
         {"class": "cnn_tdnn", "args": {"conv_channels": [2, 4], "freq_strides": [1, 2],
                                        "hidden_dim": 16}},
         {"class": "mlp", "args": {"left_context": 2, "right_context": 2, "hidden_dim": 16,
                                   "num_layers": 1}}]


def test_the_audit_counts_each_kind_of_sync_and_where():
    x = torch.arange(-3.0, 7.0)
    mask = x > 0
    with SyncAudit() as audit:
        with sync_region("step"):
            x.nonzero()
            x[mask]
            x[mask] = 1.0
            torch.masked_select(x, mask)
            torch.unique(x)
            torch.repeat_interleave(torch.tensor([1, 2]), torch.tensor([2, 1]))
            float(x.sum())
            x.tolist()
            x.cpu()
            x.numpy()
            # None of these reads anything back or sizes its output by the data:
            torch.repeat_interleave(torch.tensor([1, 2]), torch.tensor([2, 1]), output_size=3)
            torch.where(mask, x, 0.0).sum()
            x[torch.tensor([0, 2])]
        int(x.argmax())
    assert audit.inside("step") == {
        "Tensor.cpu": 1, "Tensor.numpy": 1, "Tensor.tolist": 1,
        "_local_scalar_dense": 1, "_unique2": 1, "index (boolean mask)": 1,
        "index_put_ (boolean mask)": 1, "masked_select": 1, "nonzero": 1,
        "repeat_interleave (no output_size)": 1}
    assert audit.outside() == {"_local_scalar_dense": 1}
    with sync_region("step"):  # no audit: nothing counted, nothing kept
        x.nonzero()
    assert sum(audit.counts.values()) == 11


def _report(audit: SyncAudit, regions: list[str]) -> None:
    print({r: audit.inside(r) for r in regions}, "outside:", audit.outside())


@pytest.mark.parametrize("stacked", [False, True])
def test_teacher_training_steps_do_not_sync(tmp_path, stacked):
    feats, targets = _yesno_feats(4)
    model = [SMALL[2]] * 2 if stacked else SMALL
    cfg = TrainConfig(model=model, members=len(model), stacked=stacked, epochs=1,
                      batch_size=16, chunk_size=8, valid_fraction=0.25, seed=0)
    with SyncAudit() as audit:
        train_members(cfg, feats, targets, 4, tmp_path, CPU)
    _report(audit, ["train step", "validation batch"])
    assert audit.inside("train step") == {}
    assert audit.inside("validation batch") == {}
    assert sum(audit.counts.values()) > 0  # the epoch's ends read their figures, once


def _transfer(tmp_path, feats, soft: bool):
    """Two of the utterances again as an untranscribed transfer set, with a top-k cache."""
    utts = sorted(feats)[:2]
    write_frame_store(tmp_path, ((u, feats[u]) for u in utts), {"fbank": {}})
    store = FrameStore(tmp_path)
    n, k = store.num_frames, 3
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    cache = (rng.integers(0, 4, (n, k)), probs, np.full(n, 0.9, np.float32))
    return [store], [cache] if soft else None


@pytest.mark.parametrize("source", ["online", "topk"])
def test_distillation_steps_do_not_sync(tmp_path, source):
    feats, targets = _yesno_feats(4)
    distill = DistillConfig(alpha=0.8, temperature=2.0, source=source, top_k=3,
                            transfer=["transfer"], transfer_weight=0.25)
    cfg = TrainConfig(model=SMALL[1], members=1, epochs=1, batch_size=16, chunk_size=8,
                      valid_fraction=0.25, seed=0, distill=distill,
                      augment=AugmentConfig(freq_masks=2, freq_width=6, time_masks=1,
                                            time_width=4))
    teachers = make_members(SMALL[:2], [1, 2], 40, 4, False) if source == "online" else None

    def cache(utts):
        n = sum(len(targets[u]) for u in utts)
        g = torch.Generator().manual_seed(0)
        return (torch.randint(4, (n, 3), generator=g),
                torch.log_softmax(torch.randn(n, 3, generator=g), -1), torch.full((n,), 0.9))

    with SyncAudit() as audit:
        train_members(cfg, feats, targets, 4, tmp_path / "out", CPU, teachers=teachers,
                      cache=cache, transfer=_transfer(tmp_path / "t", feats, source == "topk"))
    _report(audit, ["train step", "validation batch"])
    assert audit.inside("train step") == {}
    assert audit.inside("validation batch") == {}


@pytest.mark.parametrize("stacked", [False, True])
def test_specialist_steps_do_not_sync(tmp_path, stacked):
    g = torch.Generator().manual_seed(0)
    feats = {f"u{i}": torch.randn(40, 5, generator=g).numpy() for i in range(10)}
    targets = {u: torch.randint(P, (40,), generator=g).numpy() for u in feats}
    cfg = SpecialistConfig(num_clusters=2, cluster_size=3, epochs=1, batch_size=32,
                           epoch_frames=128, valid_frames=64, valid_fraction=0.2, alpha=0.5,
                           stacked=stacked)
    with SyncAudit() as audit:
        train_specialists(cfg, feats, targets, _generalist(), tmp_path, CPU)
    _report(audit, ["specialist step"])
    assert audit.inside("specialist step") == {}


def test_gmm_accumulation_chunks_do_not_sync():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, generator=g)
    pdf = torch.randint(2, (1000,), generator=g)
    gmm = DiagGmm(torch.randn(2, 4, 3, generator=g), torch.ones(2, 4, 3),
                  torch.full((2, 4), -math.log(4)))
    with SyncAudit() as audit:
        _, _, _, ll = gmm.accumulate(x, pdf, chunk=128)  # 8 chunks
    _report(audit, ["gmm accumulation chunk"])
    assert audit.inside("gmm accumulation chunk") == {}
    assert audit.outside() == {"_local_scalar_dense": 1}  # the log-likelihood, read once
    assert ll == pytest.approx(float(gmm.log_likelihoods(x).gather(1, pdf[:, None]).sum()),
                               rel=1e-5)


def test_viterbi_frames_do_not_sync(yesno_run, monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    _, utts, graphs, lls, tid_lp, tid2pdf = _viterbi_inputs(rdir, 4)
    with SyncAudit() as audit:
        paths, _ = viterbi_align([graphs[u] for u in utts], lls, tid_lp, tid2pdf)
    _report(audit, ["viterbi frame", "viterbi traceback frame"])
    assert all(p is not None for p in paths)
    assert audit.inside("viterbi frame") == {}
    assert audit.inside("viterbi traceback frame") == {}
