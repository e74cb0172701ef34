"""Knowledge distillation pieces against hand computations: the KD loss and its temperature
scaling, the ensemble's combined targets, stacked vs looped members, the top-k soft-target cache,
FLOP counting and config validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_kd.acoustic import DnnAcousticModel, EnsembleAcousticModel, flops_per_frame
from asr_kd.acoustic.soft_targets import combine_log_probs
from asr_kd.features import FbankConfig, fbank_utterances
from asr_kd.nets.mlp import SplicedMLP
from asr_kd.train.distill import DistillConfig, kd_loss, zero_mean_logits
from asr_kd.train.members import LoopMembers, StackedMLP, make_members
from asr_kd.train.soft_cache import load_soft_cache, write_soft_cache
from asr_kd.train.trainer import MemberAdam, TrainConfig, resume, train_members
from tests.conftest import corpus


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread is fastest, and far faster than two on a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _softmax(row: list[float], t: float = 1.0) -> list[float]:
    m = max(row)
    e = [math.exp((x - m) / t) for x in row]
    s = sum(e)
    return [x / s for x in e]


def _np_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# Three frames, three classes; frame 1 is padding (hard -100) with nonsense soft targets.
Z = [[1.0, 2.0, 0.5], [9.0, -9.0, 0.0], [0.3, -1.0, 2.0]]
HARD = [1, -100, 2]
P = [[0.7, 0.2, 0.1], [1.0 / 3, 1.0 / 3, 1.0 / 3], [0.1, 0.3, 0.6]]


def _hand_kd(alpha: float, t: float, p_rows, ids_rows=None) -> float:
    """(1 - alpha) * mean CE + alpha * T^2 * mean KL over the frames with a hard label; with
    ids_rows, p_rows are the kept probabilities of those ids (KL over the kept ones only)."""
    ce, kl, n = 0.0, 0.0, 0
    for f, (z, y) in enumerate(zip(Z, HARD)):
        if y < 0:
            continue
        n += 1
        ce -= math.log(_softmax(z)[y])
        q = _softmax(z, t)
        ids = ids_rows[f] if ids_rows is not None else range(len(z))
        kl += sum(p * (math.log(p) - math.log(q[i])) for p, i in zip(p_rows[f], ids))
    return (1 - alpha) * ce / n + alpha * t * t * kl / n


def test_kd_loss_matches_hand_computation():
    z, hard = torch.tensor(Z), torch.tensor(HARD)
    logp = torch.tensor(P).log()
    for alpha, t in [(0.3, 2.0), (1.0, 5.0), (0.0, 3.0)]:
        cfg = DistillConfig(alpha=alpha, temperature=t)
        got = kd_loss(z, hard, cfg, soft_logp=logp)
        assert math.isclose(float(got), _hand_kd(alpha, t, P), rel_tol=1e-5), (alpha, t)
    # Leading batch dims (the trainer's [B, C, P]) give the same mean over valid frames.
    cfg = DistillConfig(alpha=0.3, temperature=2.0)
    got = kd_loss(z.view(1, 3, 3), hard.view(1, 3), cfg, soft_logp=logp.view(1, 3, 3))
    assert math.isclose(float(got), _hand_kd(0.3, 2.0, P), rel_tol=1e-5)
    # The padded frame really is ignored: changing its logits/soft targets changes nothing.
    z2, logp2 = z.clone(), logp.clone()
    z2[1] = torch.tensor([-50.0, 3.0, 7.0])
    logp2[1] = torch.tensor([0.98, 0.01, 0.01]).log()
    same = kd_loss(z, hard, cfg, soft_logp=logp)
    assert torch.equal(kd_loss(z2, hard, cfg, soft_logp=logp2), same)


def test_kd_loss_topk_forms():
    z, hard = torch.tensor(Z), torch.tensor(HARD)
    logp = torch.tensor(P).log()
    cfg = DistillConfig(alpha=0.4, temperature=2.0, source="topk", top_k=3)
    dense = kd_loss(z, hard, cfg, soft_logp=logp)
    # k = P, ids in a per-frame order that is not the identity (descending probability).
    ids = torch.tensor([[0, 1, 2], [2, 0, 1], [2, 1, 0]])
    topk = kd_loss(z, hard, cfg, soft_logp=logp.gather(-1, ids), soft_ids=ids.to(torch.int32))
    assert math.isclose(float(topk), float(dense), rel_tol=1e-6)
    # k = 2: the cached probabilities are renormalised over the two kept; the student's
    # log q is its full softmax at those ids.
    ids2 = [[0, 1], [0, 1], [2, 1]]
    kept = [[P[f][i] for i in row] for f, row in enumerate(ids2)]
    renorm = [[p / sum(row) for p in row] for row in kept]
    want = _hand_kd(0.4, 2.0, renorm, ids2)
    got = kd_loss(z, hard, cfg, soft_logp=torch.tensor(renorm).log(),
                  soft_ids=torch.tensor(ids2, dtype=torch.int32))
    assert math.isclose(float(got), want, rel_tol=1e-5)
    assert not math.isclose(float(got), float(dense), rel_tol=1e-3)
    # With the kept mass, the KL is over k + 1 bins: the two ids and "the rest" (whose student
    # probability is 1 - its probabilities at the kept ids).
    mass = [sum(row) for row in kept]
    want_bins = 0.0
    for f, (zf, y) in enumerate(zip(Z, HARD)):
        if y < 0:
            continue
        q = _softmax(zf, 2.0)
        q_rest = 1 - sum(q[i] for i in ids2[f])
        want_bins += sum(p * math.log(p / q[i]) for p, i in zip(kept[f], ids2[f]))
        want_bins += (1 - mass[f]) * math.log((1 - mass[f]) / q_rest)
    n = sum(y >= 0 for y in HARD)
    ce = -sum(math.log(_softmax(zf)[y]) for zf, y in zip(Z, HARD) if y >= 0) / n
    want_bins = 0.6 * ce + 0.4 * 4.0 * want_bins / n
    got_bins = kd_loss(z, hard, cfg, soft_logp=torch.tensor(renorm).log(),
                       soft_ids=torch.tensor(ids2, dtype=torch.int32),
                       soft_mass=torch.tensor(mass))
    assert math.isclose(float(got_bins), want_bins, rel_tol=1e-5)
    # k = P holds all the mass: the k + 1-bin form is the dense one.
    full = kd_loss(z, hard, cfg, soft_logp=logp.gather(-1, ids), soft_ids=ids.to(torch.int32),
                   soft_mass=torch.ones(3))
    assert math.isclose(float(full), float(dense), rel_tol=1e-5)


def test_kd_loss_mse_mode():
    z, hard = torch.tensor(Z), torch.tensor(HARD)
    v = [[0.5, -1.0, 0.5], [0.0, 0.0, 0.0], [-2.0, 1.0, 1.0]]  # zero-mean teacher logits
    for alpha in (0.25, 1.0):
        cfg = DistillConfig(alpha=alpha, temperature=4.0, mode="mse")
        got = kd_loss(z, hard, cfg, teacher_logits=torch.tensor(v))
        ce = mse = 0.0
        for zr, vr, y in zip(Z, v, HARD):
            if y < 0:
                continue
            ce -= math.log(_softmax(zr)[y]) / 2
            mz = sum(zr) / 3
            mse += sum(((a - mz) - b) ** 2 for a, b in zip(zr, vr)) / 3 / 2
        assert math.isclose(float(got), (1 - alpha) * ce + alpha * mse / 2, rel_tol=1e-5)
    # zero_mean_logits: the mean over members of each member's zero-mean logits.
    m = np.array([[[1.0, 2.0, 6.0]], [[0.0, -3.0, 0.0]]])
    want = (m - m.mean(-1, keepdims=True)).mean(0)
    assert np.allclose(zero_mean_logits(torch.tensor(m)).numpy(), want, atol=1e-6)


def _soft_grad(z: torch.Tensor, v: torch.Tensor, cfg: DistillConfig) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    hard = torch.zeros(z.shape[0], dtype=torch.long)
    if cfg.mode == "mse":
        loss = kd_loss(z, hard, cfg, teacher_logits=v)
    else:
        loss = kd_loss(z, hard, cfg, soft_logp=torch.log_softmax(v / cfg.temperature, -1))
    loss.backward()
    return z.grad


def test_soft_gradient_temperature_scaling_and_logit_matching_limit():
    g = torch.Generator().manual_seed(0)
    n, p = 6, 10
    z = torch.randn(n, p, generator=g)
    v = torch.randn(n, p, generator=g)
    z, v = z - z.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    # Without T^2 the soft term's gradient falls as 1/T^2: T 10 -> 20 divides it by ~4 ...
    g10 = _soft_grad(z, v, DistillConfig(alpha=1.0, temperature=10.0)) / 10.0 ** 2
    g20 = _soft_grad(z, v, DistillConfig(alpha=1.0, temperature=20.0)) / 20.0 ** 2
    ratio = float(g10.norm() / g20.norm())
    assert ratio == pytest.approx(4.0, rel=0.03)
    # ... so with it (what kd_loss computes) the gradient hardly depends on T.
    assert float((g10 * 100).norm() / (g20 * 400).norm()) == pytest.approx(1.0, rel=0.03)
    # At high T, alpha T^2 KL tends to logit matching: gradient (z - v) / (P * frames), the
    # gradient of mode 'mse'.
    g100 = _soft_grad(z, v, DistillConfig(alpha=1.0, temperature=100.0))
    g_mse = _soft_grad(z, v, DistillConfig(alpha=1.0, temperature=100.0, mode="mse"))
    limit = (z - v) / (p * n)
    assert torch.allclose(g_mse, limit, atol=1e-7)
    assert float((g100 - g_mse).norm() / g_mse.norm()) < 0.02
    # The limit is approached: T=10 is further from it than T=100.
    assert float((g10 * 100 - g_mse).norm()) > 3 * float((g100 - g_mse).norm())


def test_combine_log_probs_against_numpy():
    rng = np.random.default_rng(1)
    e, t = 3, 2.5
    z = rng.normal(scale=2.0, size=(e, 4, 5))
    p = _np_softmax(z / t)  # [E, frames, P]
    arith = combine_log_probs(torch.tensor(z), t, "arithmetic").numpy()
    assert np.allclose(arith, np.log(p.mean(0)), atol=1e-5)
    geo = combine_log_probs(torch.tensor(z), t, "geometric").numpy()
    prod = np.prod(p, axis=0) ** (1.0 / e)  # normalised geometric mean
    assert np.allclose(geo, np.log(prod / prod.sum(-1, keepdims=True)), atol=1e-5)
    assert np.allclose(geo, np.log(_np_softmax(z.mean(0) / t)), atol=1e-5)
    assert not np.allclose(geo, arith, atol=1e-3)
    for lp in (arith, geo):
        assert np.allclose(np.exp(lp).sum(-1), 1.0, atol=1e-5)


# ------------------------------------------------------------------ stacked vs loop members

SPEC = {"class": "mlp", "args": {"left_context": 2, "right_context": 2, "hidden_dim": 24,
                                 "num_layers": 2}}


def test_make_members_stacked_and_loop_start_equal():
    specs, seeds = [SPEC] * 3, [5, 6, 7]
    st = make_members(specs, seeds, 8, 6, stacked=True)
    lp = make_members(specs, seeds, 8, 6, stacked=False)
    assert isinstance(st, StackedMLP) and isinstance(lp, LoopMembers)
    assert len(st) == len(lp) == 3
    for k in range(3):
        a, b = st.member_state(k), lp.member_state(k)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert not torch.equal(st.member_state(0)["net.0.weight"], st.member_state(1)["net.0.weight"])
    x = torch.randn(4, 2 + 7 + 2, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = st.center_logits(x, 2, 7), lp.center_logits(x, 2, 7)
    assert a.shape == b.shape == (3, 4, 7, 6)
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        unstacked = torch.stack([m(x)[:, 2:9] for m in st.to_models()])
    assert torch.allclose(unstacked, b, atol=1e-5)
    # Different shapes cannot be stacked: a loop even when asked.
    other = {"class": "mlp", "args": {**SPEC["args"], "hidden_dim": 16}}
    assert isinstance(make_members([SPEC, other], [0, 1], 8, 6, stacked=True), LoopMembers)


def test_member_adam_lr_is_per_member():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 4, 5, generator=g)
    grad = torch.randn(3, 4, 5, generator=g)
    for stacked in (True, False):
        moved = []
        for halve in (False, True):
            if stacked:
                ps = [torch.nn.Parameter(w0.clone())]
                params = [(ps[0], None)]
            else:
                ps = [torch.nn.Parameter(w0[k].clone()) for k in range(3)]
                params = [(p, k) for k, p in enumerate(ps)]
            opt = MemberAdam(params, 3, lr=0.01)
            if halve:
                opt.lr[1] *= 0.5
            for _ in range(3):
                for p, _k in params:
                    p.grad = grad.clone() if stacked else grad[_k].clone()
                opt.step()
            w = ps[0].detach() if stacked else torch.stack([p.detach() for p in ps])
            moved.append(w - w0)
        full, half = moved
        assert float(full.abs().min()) > 0
        assert torch.equal(full[0], half[0]) and torch.equal(full[2], half[2])
        assert torch.allclose(half[1], 0.5 * full[1], rtol=1e-5, atol=1e-9)


def test_member_adam_halving_mid_run_reaches_a_stacked_tensor():
    """A learning rate halved between steps applies from the next step in both forms (the
    stacked form keeps the rates as a device tensor, refreshed when they change)."""
    g = torch.Generator().manual_seed(1)
    w0 = torch.randn(3, 4, 5, generator=g)
    grads = torch.randn(4, 3, 4, 5, generator=g)
    stacked = torch.nn.Parameter(w0.clone())
    loop = [torch.nn.Parameter(w0[k].clone()) for k in range(3)]
    opts = [MemberAdam([(stacked, None)], 3, lr=0.01),
            MemberAdam([(p, k) for k, p in enumerate(loop)], 3, lr=0.01)]
    for step, grad in enumerate(grads):
        if step == 2:
            for opt in opts:
                opt.lr[1] *= 0.5
        stacked.grad = grad.clone()
        for k, p in enumerate(loop):
            p.grad = grad[k].clone()
        for opt in opts:
            opt.step()
    torch.testing.assert_close(stacked.detach(), torch.stack([p.detach() for p in loop]))
    assert not torch.allclose(stacked.detach()[1], w0[1])

def _yesno_feats(num: int = 6):
    files = sorted((corpus("yesno") / "waves_yesno").glob("*.wav"))[:num]
    if len(files) < num:
        pytest.skip("yesno corpus incomplete")
    waves = []
    for f in files:
        x, sr = sf.read(f, dtype="int16")
        assert sr == 8000
        waves.append(x.astype(np.float32))
    raw = [f.numpy() for f in fbank_utterances(waves, FbankConfig(sample_rate=8000))]
    allf = np.concatenate(raw)
    mu, sd = allf.mean(0), allf.std(0) + 1e-5
    feats = {f.stem: ((x - mu) / sd).astype(np.float32) for f, x in zip(files, raw)}
    # Targets: which of 4 bands of 10 mel bins is loudest, a deterministic function of the frame.
    targets = {f.stem: x.reshape(len(x), 4, 10).mean(-1).argmax(-1).astype(np.int64)
               for f, x in zip(files, raw)}
    return feats, targets


def test_train_members_stacked_equals_loop(tmp_path):
    feats, targets = _yesno_feats()
    assert len({int(c) for y in targets.values() for c in y}) > 1
    results, lrs = {}, [2e-3, 1e-3, 5e-4]
    for stacked in (True, False):
        cfg = TrainConfig(model=SPEC, members=3, stacked=stacked, epochs=2, batch_size=32,
                          chunk_size=8, lr=2e-3, valid_fraction=0.2, seed=3)
        out = tmp_path / ("stacked" if stacked else "loop")
        train_members(cfg, feats, targets, 4, out, torch.device("cpu"))
        # A third epoch, resumed from epoch 2 with a different learning rate per member, so
        # the stacked form's per-member rates are exercised too.
        ck = torch.load(out / "epoch-2.pt", weights_only=True)
        ck["optimizer"]["lr"] = list(lrs)
        torch.save(ck, out / "epoch-2.pt")
        cfg.epochs = 3
        results[stacked] = train_members(cfg, feats, targets, 4, out, torch.device("cpu"))
    (n_st, h_st), (n_lp, h_lp) = results[True], results[False]
    # Only the newest checkpoint and the members' best epochs are kept.
    for stacked, (_, hist) in results.items():
        best = {max(range(3), key=lambda e: (hist[e]["members"][k]["valid_acc"], -e)) + 1
                for k in range(3)}
        kept = {int(p.stem.split("-")[1])
                for p in (tmp_path / ("stacked" if stacked else "loop")).glob("epoch-*.pt")}
        assert kept == best | {3}
    assert len(n_st) == len(n_lp) == 3 and len(h_st) == len(h_lp) == 3
    assert [m["lr"] for m in h_st[2]["members"]] == lrs
    for e_st, e_lp in zip(h_st, h_lp):
        acc_st = [m["valid_acc"] for m in e_st["members"]]
        acc_lp = [m["valid_acc"] for m in e_lp["members"]]
        assert acc_st == acc_lp
        assert [m["lr"] for m in e_st["members"]] == [m["lr"] for m in e_lp["members"]]
        for a, b in zip(e_st["members"], e_lp["members"]):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    # Training did something, and the members differ (seeds seed+k).
    assert h_st[1]["members"][0]["train_loss"] < h_st[0]["members"][0]["train_loss"]
    x = torch.from_numpy(next(iter(feats.values())))[None]
    outs = []
    for a, b in zip(n_st, n_lp):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            scale = float(sb[name].abs().max())
            assert float((sa[name] - sb[name]).abs().max()) <= 1e-4 * scale, name
        with torch.no_grad():
            za, zb = a(x), b(x)
        assert float((za - zb).abs().max()) <= 1e-4 * float(zb.abs().max())
        outs.append(za)
    assert not torch.allclose(outs[0], outs[1], atol=1e-2)


# ------------------------------------------------------------------ top-k soft-target cache

def _small_dnn(seed: int, feat_dim: int, num_pdfs: int) -> DnnAcousticModel:
    torch.manual_seed(seed)
    net = SplicedMLP(feat_dim, num_pdfs, left_context=1, right_context=2, hidden_dim=16,
                     num_layers=1)
    return DnnAcousticModel(net, {"class": "mlp"}, np.ones(num_pdfs))


def test_soft_cache_round_trip(tmp_path):
    feat_dim, num_pdfs, t = 5, 6, 2.0
    ens = EnsembleAcousticModel([_small_dnn(0, feat_dim, num_pdfs),
                                 _small_dnn(1, feat_dim, num_pdfs)])
    g = torch.Generator().manual_seed(0)
    lengths = {"u1": 7, "u2": 3, "u3": 10, "u4": 5}
    feats = {u: torch.randn(n, feat_dim, generator=g) for u, n in lengths.items()}
    out = write_soft_cache(tmp_path / "cache", ens, feats, t, 3, batch_size=3)
    want = ["u3", "u1", "u4"]
    ids, logp, mass = load_soft_cache(out, want)
    assert ids.dtype == torch.int64 and ids.shape == logp.shape == (10 + 7 + 5, 3)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(len(ids)), atol=1e-5)
    exp_ids, exp_logp, exp_mass = [], [], []
    for u in want:
        with torch.no_grad():  # each utterance alone, unpadded
            z = torch.stack([m.net(feats[u][None])[0] for m in ens.members])
        p = combine_log_probs(z, t).exp().numpy().astype(np.float64)
        top = np.argsort(-p, axis=-1, kind="stable")[:, :3]
        kept = np.take_along_axis(p, top, -1)
        exp_ids.append(top)
        exp_logp.append(np.log(kept / kept.sum(-1, keepdims=True)))
        exp_mass.append(kept.sum(-1))
    assert np.array_equal(ids.numpy(), np.concatenate(exp_ids))
    assert np.allclose(logp.numpy(), np.concatenate(exp_logp), atol=1e-5)
    assert np.allclose(mass.numpy(), np.concatenate(exp_mass), atol=1e-5)
    assert (mass.numpy() < 1).all()  # 3 of 6 pdfs never hold all the mass here
    # A missing utterance is named; a cache without its done marker is refused.
    with pytest.raises(ValueError, match="utterance 'nope' is not in the cache"):
        load_soft_cache(out, ["u1", "nope"])
    (out / ".done").unlink()
    with pytest.raises(FileNotFoundError, match="no complete soft-target cache"):
        load_soft_cache(out, ["u1"])


# ------------------------------------------------------------------ FLOPs and config checks

def test_flops_per_frame_counts_linear_layers():
    net = SplicedMLP(13, 7, left_context=2, right_context=3, hidden_dim=24, num_layers=2)
    hand = 2 * (13 * 6 * 24 + 24 * 24 + 24 * 7)
    assert flops_per_frame(net, 13) == pytest.approx(hand, rel=1e-3)
    dnn = DnnAcousticModel(net, {"class": "mlp"}, np.ones(7))
    ens = EnsembleAcousticModel([dnn, dnn])
    assert ens.flops_per_frame(13) == pytest.approx(2 * hand, rel=1e-3)


def test_distill_config_rejects_bad_values():
    cases = [
        ({"mode": "mse", "source": "topk"},
         "mode 'mse' matches logits, which a top-k cache of probabilities lacks; "
         "use source 'online'"),
        ({"mode": "l2"}, "mode must be 'kl' or 'mse'"),
        ({"combine": "median"}, "combine must be 'arithmetic' or 'geometric'"),
        ({"source": "disk"}, "source must be 'online' or 'topk'"),
        ({"alpha": 1.5}, "alpha must be in [0, 1]"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"top_k": 0}, "top_k must be >= 1"),
        ({"transfer_weight": 1.0}, "transfer_weight must be in (0, 1)"),
        ({"transfer": "data/x"}, "transfer must be a list of data dirs"),
        ({"transfer": ["data/x"]}, "transfer sets have no hard targets, so they need alpha > 0"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError) as e:
            DistillConfig(**kwargs)
        fields = {"alpha": 0.0, "temperature": 1.0, "mode": "kl", "combine": "arithmetic",
                  "source": "online", "top_k": 20, "transfer": [], "transfer_weight": 0.5,
                  **kwargs}
        got = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        assert str(e.value) == f"distill: {msg} (got DistillConfig({got}))"
    assert not DistillConfig().uses_teachers and DistillConfig(alpha=0.1).uses_teachers


def test_resume_for_a_gpu_run_reads_the_checkpoint_to_the_cpu(tmp_path):
    """The generators' states must be CPU tensors: a checkpoint loaded straight onto a GPU
    could not restore them (and on a machine without one, could not be read at all)."""
    feats, targets = _yesno_feats(4)
    cfg = TrainConfig(model=SPEC, members=1, epochs=1, batch_size=16, chunk_size=8,
                      valid_fraction=0.25, seed=3)
    train_members(cfg, feats, targets, 4, tmp_path, torch.device("cpu"))
    members = make_members(cfg.member_specs(), cfg.member_seeds(), 40, 4, False)
    opt = MemberAdam(members.member_params(), 1, cfg.lr)
    gen = torch.Generator()
    best, history, start = resume(tmp_path, members, opt, gen, torch.device("cuda"))
    assert start == 2 and len(history) == 1 and best[0]["epoch"] == 1
    ck = torch.load(tmp_path / "epoch-1.pt", weights_only=True)
    assert torch.equal(gen.get_state(), ck["rng"]) and opt.t == ck["optimizer"]["t"]
