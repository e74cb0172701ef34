"""Specialists (paper section 5): the KL combination, the clusters, the specialists' start
from the generalist, and stacked vs loop training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from asr_kd.acoustic import DnnAcousticModel
from asr_kd.acoustic.specialists import combine_specialists, kl_objective
from asr_kd.nets.mlp import SplicedMLP
from asr_kd.train.specialists import (
    SpecialistConfig,
    confusion_clusters,
    specialist_net,
    train_specialists,
)

P = 7
CLUSTERS = [[0, 1, 2], [2, 3, 4]]  # overlapping: pdf 2 is in both


def _mask(clusters, num_pdfs=P):
    m = torch.zeros(len(clusters), num_pdfs, dtype=torch.bool)
    for k, c in enumerate(clusters):
        m[k, c] = True
    return m


def _example(frames=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp_g = torch.log_softmax(2 * torch.randn(frames, P, generator=g), -1)
    spec = [torch.log_softmax(2 * torch.randn(frames, len(c) + 1, generator=g), -1)
            for c in CLUSTERS]
    return logp_g, spec


def test_only_the_generalist_gives_its_distribution():
    logp_g, spec = _example()
    active = torch.zeros(len(logp_g), len(CLUSTERS), dtype=torch.bool)
    logq, obj = combine_specialists(logp_g, spec, _mask(CLUSTERS), active)
    assert torch.equal(logq, torch.log_softmax(logp_g, -1))
    assert torch.equal(obj, torch.zeros(len(logp_g)))


def test_objective_never_increases_and_specialists_move_q():
    logp_g, spec = _example(frames=20)
    active = torch.rand(20, 2, generator=torch.Generator().manual_seed(1)) < 0.7
    active[0] = False  # a frame with no specialist stays the generalist's
    objs = [combine_specialists(logp_g, spec, _mask(CLUSTERS), active, steps=s)[1]
            for s in (0, 1, 2, 3, 5, 10, 20, 50, 100)]
    for before, after in zip(objs, objs[1:]):
        assert bool((after <= before + 1e-6).all())
    assert bool((objs[-1][active.any(-1)] < objs[0][active.any(-1)] - 1e-3).all())
    logq, _ = combine_specialists(logp_g, spec, _mask(CLUSTERS), active)
    assert torch.allclose(logq[0], logp_g[0], atol=1e-6)


def test_matches_a_general_optimiser():
    """Both specialists active on every frame: scipy's BFGS on the same objective finds the
    same distribution."""
    logp_g, spec = _example(frames=4, seed=3)
    active = torch.ones(4, 2, dtype=torch.bool)
    mask = _mask(CLUSTERS)
    logq, obj = combine_specialists(logp_g.double(), [s.double() for s in spec], mask, active,
                                    steps=400)
    for n in range(4):
        args = (logp_g[n:n + 1].double(), [s[n:n + 1].double() for s in spec], mask,
                active[n:n + 1])

        def f(z, args=args):
            zt = torch.tensor(z[None], requires_grad=True)
            val = kl_objective(zt, *args).sum()
            (g,) = torch.autograd.grad(val, zt)
            return float(val.detach()), g[0].numpy()

        res = minimize(f, logp_g[n].double().numpy(), jac=True, method="BFGS",
                       options={"gtol": 1e-10})
        q_ref = torch.softmax(torch.tensor(res.x), -1)
        assert torch.allclose(logq[n].exp().double(), q_ref, atol=1e-4), (n, logq[n].exp(), q_ref)
        assert float(obj[n]) == pytest.approx(res.fun, abs=1e-6)


def test_clusters_follow_what_the_generalist_confuses():
    """Frames whose posterior mass is shared within {0,1,2}, {3,4} or {5,6,7}: those groups are
    the clusters; cluster_size fills a cluster up with its nearest other pdfs."""
    g = torch.Generator().manual_seed(0)
    groups = [[0, 1, 2], [3, 4], [5, 6, 7]]
    rows = []
    for _ in range(600):
        grp = groups[int(torch.randint(3, (1,), generator=g))]
        p = torch.full((8,), 0.01)
        p[grp] = torch.rand(len(grp), generator=g) + 0.1
        rows.append(p / p.sum())
    probs = torch.stack(rows)
    got = confusion_clusters(probs, num_clusters=3, cluster_size=3)
    assert len(got) == 3 and [0, 1, 2] in got and [5, 6, 7] in got
    two = [c for c in got if 3 in c]
    assert len(two) == 1 and {3, 4} < set(two[0]) and len(two[0]) == 3
    assert confusion_clusters(probs, 3, 3) == got  # same seed, same clusters
    # Room for 4 x 2 = 8 pdfs: each pdf in exactly one cluster; the two groups of three leave
    # one pdf each, so one pair must cross groups, and only one does.
    pairs = confusion_clusters(probs, num_clusters=4, cluster_size=2)
    assert sorted(p for c in pairs for p in c) == list(range(8))
    assert sum(any(set(c) <= set(grp) for grp in groups) for c in pairs) == 3
    with pytest.raises(ValueError, match="cluster_size must be between 1 and 7"):
        confusion_clusters(probs, 3, 8)


SPEC = {"class": "mlp", "args": {"left_context": 2, "right_context": 2, "hidden_dim": 16,
                                 "num_layers": 2}}


def _generalist(input_dim=5):
    torch.manual_seed(0)
    net = SplicedMLP(input_dim, P, **SPEC["args"])
    return DnnAcousticModel(net, SPEC, np.arange(1, P + 1, dtype=np.float64))


def test_a_specialist_starts_as_the_generalist_on_its_cluster():
    gen = _generalist()
    net = specialist_net(gen, [1, 4, 5], 5)
    x = torch.randn(2, 30, 5)
    zg, zs = gen.net(x), net(x)
    assert torch.allclose(zs[..., :3], zg[..., [1, 4, 5]])
    # the dustbin: the other rows' mean weights, their biases' logsumexp
    rest = [0, 2, 3, 6]
    w, b = gen.net.net[-1].weight, gen.net.net[-1].bias
    assert torch.allclose(net.net[-1].weight[3], w[rest].mean(0))
    assert torch.allclose(net.net[-1].bias[3], b[rest].logsumexp(0))


def test_stacked_and_loop_specialists_train_alike(tmp_path):
    g = torch.Generator().manual_seed(0)
    feats = {f"u{i}": torch.randn(40, 5, generator=g).numpy() for i in range(10)}
    targets = {u: torch.randint(P, (40,), generator=g).numpy() for u in feats}
    cfg = dict(num_clusters=2, cluster_size=3, epochs=2, batch_size=32, epoch_frames=128,
               valid_frames=64, valid_fraction=0.2, alpha=0.5, temperature=2.0)
    models = [train_specialists(SpecialistConfig(stacked=st, **cfg), feats, targets,
                                _generalist(), tmp_path / str(st), torch.device("cpu"))[0]
              for st in (True, False)]
    assert models[0].clusters == models[1].clusters and len(models[0].clusters) == 2
    for a, b in zip(models[0].specialists, models[1].specialists):
        for (n, x), y in zip(a.net.state_dict().items(), b.net.state_dict().values()):
            assert torch.allclose(x, y, atol=1e-5), n
    for a, b in zip(models[0].dustbin_offsets, models[1].dustbin_offsets):
        assert a == b
    x = [torch.from_numpy(feats["u0"])]
    # the combination's step sizes follow its accept/reject decisions, which weights equal to
    # 1e-5 can tip: it ends near the same optimum
    diff = (models[0].log_posteriors(x)[0] - models[1].log_posteriors(x)[0]).abs().max()
    assert float(diff) < 1e-3, float(diff)
