"""tri3 (SAT with fMLLR, asr_kd.hmm.train_sat and asr_kd.hmm.sat) on the real yesno audio: tri2
from the recipe's monophone alignments, then `asr-kd train-sat` from tri2's alignments, the
training speaker's transform (not the identity, a rising auxiliary function, Kaldi's trans.ark
read back), final.alimdl, `asr-kd align` with estimated or given transforms, and the two-pass
decode of test_yesno (`asr-kd decode` on the SAT model: final.alimdl first, fMLLR, then the SAT
model), as Kaldi's decode_fmllr.sh. Also the transforms' helpers on synthetic data."""

from __future__ import annotations

import json
import os
import subprocess

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from asr_kd.features import as_tensors
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.sat import (
    FmllrConfig,
    apply_transforms,
    compose,
    estimate_transforms,
    identity,
    read_transforms,
    silence_pdfs,
    write_transforms,
)
from asr_kd.hmm.train_sat import SatConfig, train_sat
from asr_kd.steps.common import load_dir_feats, read_int_vectors
from asr_kd.utils.config import load_config
from tests.conftest import REPO, copy_recipe, corpus, run_recipe
from tests.test_tri2 import TRI2, asr_kd

# tests/test_tri2.py's tri2, and a SAT system on its alignments with the same schedule and tree,
# fMLLR on three of its ten rounds: small enough for two busy cores.
TRI3 = {"num_iters": 10, "max_iter_inc": 6, "total_gauss": 100, "realign_iters": [5],
        "fmllr_iters": [2, 4, 6], "seed": 0,
        "tree": {"num_leaves": 16, "min_count": 20, "min_gain": 0},
        "feature": {"type": "mfcc", "num_ceps": 13, "delta_order": 0, "splice": 3}}


@pytest.fixture(scope="module")
def yesno_tri3(tmp_path_factory):
    """The yesno recipe to its monophone alignments (stages 0-5); tri2 on them and train_yesno
    aligned with it; then, through the command line, tri3 on tri2's alignments, its graph and
    the two-pass decode of test_yesno. Returns (recipe dir, the decode's stdout)."""
    from asr_kd.decode.graph import GraphConfig
    from asr_kd.hmm.train_lda_mllt import Tri2Config
    from asr_kd.steps.gmm import GmmAlignConfig, run_align, run_train_lda_mllt
    from asr_kd.steps.graph import run_make_graph

    corpus("yesno")
    rdir = copy_recipe("yesno", tmp_path_factory.mktemp("yesno_tri3"))
    proc = run_recipe(rdir, "--device", "cpu", "--stop-stage", "5")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (rdir / "conf/tri2_test.yaml").write_text(yaml.safe_dump(TRI2))
    (rdir / "conf/tri3_test.yaml").write_text(yaml.safe_dump(TRI3))
    cpu = torch.device("cpu")
    with pytest.MonkeyPatch.context() as mp:  # the data dirs' scp paths are relative to it
        mp.chdir(rdir)
        run_train_lda_mllt("data/train_yesno", "data/lang", "exp/mono_ali_train_yesno",
                           "exp/tri2", load_config(Tri2Config, "conf/tri2_test.yaml"), cpu)
        run_align("data/train_yesno", "data/lang", "exp/tri2", "exp/tri2_ali_train_yesno",
                  load_config(GmmAlignConfig, "conf/tri2_test.yaml"), cpu)
    asr_kd("train-sat", "data/train_yesno", "data/lang", "exp/tri2_ali_train_yesno",
           "exp/tri3", "--config", "conf/tri3_test.yaml", cwd=rdir)
    run_make_graph(rdir / "data/lang", rdir / "exp/tri3", rdir / "exp/graph_tri3",
                   GraphConfig())
    decode = asr_kd("decode", "--system", "tri3", "exp/tri3/final.mdl", "exp/graph_tri3",
                    "data/test_yesno", "exp/tri3/decode_test_yesno", "--decoder", "reference",
                    "--config", "conf/decode_gmm.yaml", cwd=rdir)
    return rdir, decode.stdout


def test_sat_model_files_and_run_json(yesno_tri3):
    rdir, _ = yesno_tri3
    tri3 = GmmHmm.load(rdir / "exp/tri3/final.mdl")
    tri2 = GmmHmm.load(rdir / "exp/tri2/final.mdl")
    alimdl = GmmHmm.load(rdir / "exp/tri3/final.alimdl")
    assert tri3.speaker_adapted and not alimdl.speaker_adapted and not tri2.speaker_adapted
    # the source's features, matrix included; a new tree
    assert torch.equal(tri3.feature.transform, tri2.feature.transform)
    assert tri3.gmm.means.shape[-1] == 40 and tri3.num_pdfs == 16
    # final.alimdl: the same tree, transitions and Gaussians, re-estimated on unadapted frames
    assert alimdl.gmm.means.shape == tri3.gmm.means.shape
    assert np.array_equal(alimdl.tm.tid2pdf, tri3.tm.tid2pdf)
    assert torch.equal(torch.isfinite(alimdl.gmm.log_weights),
                       torch.isfinite(tri3.gmm.log_weights))
    assert not torch.allclose(alimdl.gmm.means, tri3.gmm.means, atol=1e-3)
    run = json.loads((rdir / "exp/tri3/run.json").read_text())
    assert run["settings"] == {"kind": "tri3"} and run["ali"] == "exp/tri2_ali_train_yesno"
    assert (rdir / "exp/tri3/final.mat").read_bytes()[:6] == b"\0BFM \4"


def test_transforms_raise_the_auxf_and_are_not_the_identity(yesno_tri3):
    """Every fMLLR estimate gains (the solve starts at the identity, so any gain is the
    transform's); the speaker's transform moves away from the identity. yesno has one speaker,
    the whole training set, so the gains are small (0.043 per frame against tri2, then 0.091,
    0.005 and 0.023 in a run); the test recordings gain more (below)."""
    rdir, _ = yesno_tri3
    run = json.loads((rdir / "exp/tri3/run.json").read_text())
    init, updates = run["fmllr_init"], run["fmllr"]
    assert init["speakers"] == 1 and init["identity"] == 0
    assert 5000 < init["frames"] < 15000, init  # silence (about half of yesno) left out
    assert init["auxf_gain"] > 0.01, init
    assert [u["iter"] for u in updates] == TRI3["fmllr_iters"]
    assert all(u["auxf_gain"] > 0 for u in updates), updates
    w = read_transforms(rdir / "exp/tri3")
    assert list(w) == ["yesno"] and w["yesno"].shape == (40, 41)
    assert (w["yesno"] - identity(40)).abs().max() > 0.05  # 0.21 in a run


def test_transforms_ark_reads_back(yesno_tri3, tmp_path):
    """trans.scp / trans.ark are Kaldi's: float matrices keyed by speaker, which kaldiio reads;
    writing them again gives the same bytes."""
    rdir, _ = yesno_tri3
    scp = (rdir / "exp/tri3/trans.scp").read_text().split()
    assert scp[0] == "yesno" and scp[1].endswith("exp/tri3/trans.ark:6")
    mats = dict(kaldiio.load_ark(str(rdir / "exp/tri3/trans.ark")))
    assert mats["yesno"].dtype == np.float32 and mats["yesno"].shape == (40, 41)
    w = read_transforms(rdir / "exp/tri3")
    write_transforms(tmp_path, w)
    assert (tmp_path / "trans.ark").read_bytes() == (rdir / "exp/tri3/trans.ark").read_bytes()


def test_two_pass_decode_of_test_yesno(yesno_tri3):
    """decode_fmllr.sh through `asr-kd decode`: the speaker-independent pass (final.alimdl),
    fMLLR from its best path, a pass of the SAT model on those features and a second estimate,
    the test speaker's transform written to the decode dir, then the final SAT pass. As for tri1 and
    tri2: at most 3 insertions and no word lost or confused (tri3 1, its SI pass 1, in a run)."""
    rdir, stdout = yesno_tri3
    ddir = rdir / "exp/tri3/decode_test_yesno"
    scores = json.loads((ddir / "scores.json").read_text())
    w = scores["wer_detail"]
    assert w["subs"] == 0 and w["dels"] == 0 and w["ins"] <= 3, scores["kaldi_line"]
    f = scores["fmllr"]
    assert f["si_wer"] <= 2.0, f["si_kaldi_line"]
    # decode_fmllr.sh's two estimates: from the SI pass, then from a SAT pass, composed
    assert len(f["estimates"]) == 2 and f["estimates"][0]["auxf_gain"] > 0.1, f  # 0.59 in a run
    assert f["estimates"][1]["auxf_gain"] > 0, f
    assert "speaker-independent first pass" in stdout and "tri3: %WER" in stdout
    trans = read_transforms(ddir)
    assert list(trans) == ["yesno"] and (trans["yesno"] - identity(40)).abs().max() > 0.01


def test_align_with_estimated_and_given_transforms(yesno_tri3):
    """align_fmllr.sh for test_yesno (transforms estimated from final.alimdl's alignment) and
    train_yesno with the training transforms (--transform-dir exp/tri3): both agree with tri2's
    phones on nearly every frame, and the ali dirs carry final.alimdl and trans.*."""
    rdir, _ = yesno_tri3
    asr_kd("align", "data/test_yesno", "data/lang", "exp/tri3", "exp/tri3_ali_test_yesno",
           "--config", "conf/tri3_test.yaml", cwd=rdir)
    asr_kd("align", "data/train_yesno", "data/lang", "exp/tri3", "exp/tri3_ali_train_yesno",
           "--config", "conf/tri3_test.yaml", "--transform-dir", "exp/tri3", cwd=rdir)
    tri3, tri2 = (GmmHmm.load(rdir / f"exp/{m}/final.mdl") for m in ("tri3", "tri2"))
    for data, ref in (("test_yesno", "exp/mono_ali_test_yesno"),
                      ("train_yesno", "exp/tri2_ali_train_yesno")):
        out = rdir / f"exp/tri3_ali_{data}"
        a = read_int_vectors(out / "tid.ark")
        b = read_int_vectors(rdir / ref / "tid.ark")
        src = GmmHmm.load(rdir / ref / "final.mdl")
        assert set(a) == set(b)
        same = np.concatenate([tri3.tm.tid2phone[a[u]] == src.tm.tid2phone[b[u]] for u in b])
        assert same.mean() > 0.95, (data, same.mean())
        assert (out / "final.alimdl").is_file() and list(read_transforms(out)) == ["yesno"]
    given = read_transforms(rdir / "exp/tri3_ali_train_yesno")["yesno"]
    assert torch.equal(given, read_transforms(rdir / "exp/tri3")["yesno"])
    del tri2


def test_align_refuses_missing_or_unwanted_transforms(yesno_tri3, tmp_path, monkeypatch):
    from asr_kd.steps.gmm import GmmAlignConfig, run_align

    rdir, _ = yesno_tri3
    monkeypatch.chdir(rdir)
    cfg = load_config(GmmAlignConfig, "conf/tri3_test.yaml")
    write_transforms(tmp_path / "other", {"someone": identity(40)})
    with pytest.raises(ValueError, match="no fMLLR transform for 1 speakers: yesno"):
        run_align("data/test_yesno", "data/lang", "exp/tri3", tmp_path / "ali", cfg,
                  torch.device("cpu"), transform_dir=tmp_path / "other")
    with pytest.raises(ValueError, match="not speaker-adapted: it takes no transforms"):
        run_align("data/test_yesno", "data/lang", "exp/tri2", tmp_path / "ali", cfg,
                  torch.device("cpu"), transform_dir="exp/tri3")


def test_train_sat_in_process_matches_and_checks(yesno_tri3, monkeypatch):
    """The library call gives the command's model (deterministic); a config whose features
    differ from the source's, or a speaker-adapted source, is refused."""
    from asr_kd.lang import load_lang

    rdir, _ = yesno_tri3
    monkeypatch.chdir(rdir)
    cfg = load_config(SatConfig, "conf/tri3_test.yaml")
    lang = load_lang("data/lang")
    d, feats = load_dir_feats("data/train_yesno")
    src = GmmHmm.load("exp/tri2_ali_train_yesno/final.mdl")
    alis = read_int_vectors("exp/tri2_ali_train_yesno/tid.ark")
    cpu = torch.device("cpu")
    bad = load_config(SatConfig, "conf/tri3_test.yaml", ["feature.splice=4"])
    with pytest.raises(ValueError, match="differs from the source model's"):
        train_sat(lang, as_tensors(feats), d.text, d.utt2spk, src, alis, bad, cpu)
    with pytest.raises(ValueError, match="speaker-adapted already"):
        train_sat(lang, as_tensors(feats), d.text, d.utt2spk, GmmHmm.load("exp/tri3/final.mdl"),
                  alis, cfg, cpu)
    sat = train_sat(lang, as_tensors(feats), d.text, d.utt2spk, src, alis, cfg, cpu)
    saved = GmmHmm.load("exp/tri3/final.mdl")
    assert torch.equal(sat.model.gmm.means, saved.gmm.means)
    assert torch.allclose(sat.transforms["yesno"], read_transforms("exp/tri3")["yesno"],
                          atol=1e-5)


# ----------------------------------------------------------------------------- synthetic


def _gmm(rng, p: int = 6, m: int = 2, d: int = 3) -> DiagGmm:
    return DiagGmm(torch.from_numpy(2 * rng.normal(size=(p, m, d))),
                   torch.from_numpy(rng.uniform(0.3, 2.0, size=(p, m, d))),
                   torch.log(torch.full((p, m), 1.0 / m, dtype=torch.float64)))


def test_estimate_transforms_per_speaker_batched():
    """Three speakers, each moved by its own affine map: each estimate undoes its speaker's
    map (single-Gaussian pdfs, so that no posterior is taken from moved frames; the estimate
    is the maximiser of the auxf given the posteriors); solving one speaker at a time gives
    the same; silence pdfs at weight 0 change
    nothing but the frame count; compose and apply agree with doing the maps in turn."""
    rng = np.random.default_rng(1)
    gmm = _gmm(rng, m=1)
    d = 3
    maps, feats, alis, spk_of_utt = {}, {}, {}, {}
    for s in ("a", "b", "c"):
        A = np.eye(d) + 0.3 * rng.normal(size=(d, d))
        b = rng.normal(size=d)
        maps[s] = (A, b)
        for k in range(4):
            u = f"{s}-{k}"
            pdf = rng.integers(0, 6, size=2500)
            g = np.zeros(2500, dtype=np.int64)
            x = gmm.means[pdf, g].numpy() + rng.normal(size=(2500, d)) * np.sqrt(
                gmm.variances[pdf, g].numpy())
            feats[u] = torch.from_numpy(x @ A.T + b)
            alis[u] = pdf
            spk_of_utt[u] = s
    none = np.zeros(6, dtype=bool)
    w, summary = estimate_transforms(gmm, feats, alis, spk_of_utt, none, FmllrConfig(),
                                     torch.device("cpu"))
    assert summary["speakers"] == 3 and summary["frames"] == 30000 and summary["auxf_gain"] > 0
    for s, (A, b) in maps.items():
        a_inv = np.linalg.inv(A)
        np.testing.assert_allclose(w[s][:, :d].numpy(), a_inv, atol=0.06)
        np.testing.assert_allclose(w[s][:, d].numpy(), -a_inv @ b, atol=0.1)
    one, _ = estimate_transforms(gmm, feats, alis, spk_of_utt, none,
                                 FmllrConfig(spk_batch=1, batch_frames=3000),
                                 torch.device("cpu"))
    for s in w:
        torch.testing.assert_close(one[s], w[s], atol=1e-8, rtol=1e-8)
    sil = np.zeros(6, dtype=bool)
    sil[0] = True
    _, partial = estimate_transforms(gmm, feats, alis, spk_of_utt, sil, FmllrConfig(),
                                     torch.device("cpu"))
    dropped = sum(int((a == 0).sum()) for a in alis.values())
    assert partial["frames"] == 30000 - dropped
    # compose: W2 o W1 applied once equals W1 then W2
    w1, w2 = w["a"], w["b"]
    x = feats["a-0"][:10]
    once = apply_transforms({"u": x}, {"s": compose(w2, w1)}, {"u": "s"})["u"]
    twice = apply_transforms(apply_transforms({"u": x}, {"s": w1}, {"u": "s"}), {"s": w2},
                             {"u": "s"})["u"]
    torch.testing.assert_close(once, twice)
    with pytest.raises(ValueError, match="no fMLLR transform for 1 speakers: z"):
        apply_transforms({"u": x}, w, {"u": "z"})


def test_twofeats_statistics():
    """DiagGmm.accumulate with `post_x`: the posteriors of one feature space, the statistics of
    another (final.alimdl's gmm-acc-stats-twofeats); the same space gives plain accumulate."""
    rng = np.random.default_rng(2)
    gmm = _gmm(rng)
    x = torch.from_numpy(rng.normal(size=(500, 3)))
    pdf = torch.from_numpy(rng.integers(0, 6, size=500))
    plain = gmm.accumulate(x, pdf)
    same = gmm.accumulate(x, pdf, chunk=64, post_x=x)
    for a, b in zip(plain[:3], same[:3]):
        torch.testing.assert_close(a, b)
    occ, sx, _, ll = gmm.accumulate(2 * x + 1, pdf, post_x=x)
    torch.testing.assert_close(occ, plain[0])  # x's posteriors ...
    torch.testing.assert_close(sx, 2 * plain[1] + plain[0][..., None])  # ... of 2x + 1's frames
    assert ll == pytest.approx(plain[3])


def test_recipe_gmm_configs_read_as_stage_configs():
    """AN4's conf/tri3.yaml is a SatConfig, and `align` reads each GMM's config."""
    from asr_kd.steps.gmm import GmmAlignConfig

    conf = REPO / "recipes/an4/conf"
    sat = load_config(SatConfig, conf / "tri3.yaml")
    tri2 = yaml.safe_load((conf / "tri2.yaml").read_text())
    assert (sat.num_iters, sat.total_gauss, sat.realign_iters, sat.tree.num_leaves) == (
        tri2["num_iters"], tri2["total_gauss"], tri2["realign_iters"], tri2["tree"]["num_leaves"])
    assert sat.fmllr_iters == [2, 4, 6, 12] and sat.feature.splice == tri2["splice"]
    for name in ("mono", "tri1", "tri2", "tri3"):
        load_config(GmmAlignConfig, conf / f"{name}.yaml")


def test_silence_pdfs_and_speaker_adapted_flag(tmp_path):
    """silence_pdfs of a monophone model are the silence phones' pdfs; the SAT flag is saved
    only when set, so other models save as before."""
    from asr_kd.hmm.model import GmmFeatureConfig
    from asr_kd.hmm.transitions import TransitionModel, monophone_tuples
    from asr_kd.lang.topology import make_topology

    topo = make_topology([2, 3], [1])
    tm = TransitionModel(topo, monophone_tuples(topo, topo.phones))
    sil = silence_pdfs(tm, [1])
    pdf_phone = {int(tm.tid2pdf[t]): int(tm.tid2phone[t]) for t in range(1, tm.num_tids + 1)}
    assert all(sil[p] == (ph == 1) for p, ph in pdf_phone.items()) and sil.any()
    gmm = DiagGmm.init_single(tm.num_pdfs, torch.zeros(4), torch.ones(4))
    plain = GmmHmm(tm, gmm, GmmFeatureConfig())
    plain.save(tmp_path / "a.mdl")
    obj = torch.load(tmp_path / "a.mdl", weights_only=True)
    assert "speaker_adapted" not in obj and not GmmHmm.load(tmp_path / "a.mdl").speaker_adapted
    GmmHmm(tm, gmm, GmmFeatureConfig(), speaker_adapted=True).save(tmp_path / "b.mdl")
    assert GmmHmm.load(tmp_path / "b.mdl").speaker_adapted


# ----------------------------------------------------------------------------- recipe wiring


def _stage_calls(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """AN4's run.sh with ARGS, every `python` call written down instead of run (a `python` on
    PATH that records its arguments): the asr-kd commands the stages would run, in order."""
    rdir = copy_recipe("an4", tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bindir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "run.sh", "--device", "cpu", *args], cwd=rdir, env=env,
                          text=True, capture_output=True, timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc, [line.removeprefix("-m asr_kd ") for line in lines]


def test_recipe_stages_for_gmm_tri3(tmp_path):
    """`--gmm tri3`, stages 4-9: tri2 on tri1's alignments, tri2's own alignment of the training
    set and train-sat on it; the targets and test alignments with tri3 (transforms estimated);
    mono, tri1 and tri2 beside it with their own graphs and test alignments."""
    proc, calls = _stage_calls(tmp_path, "--gmm", "tri3", "--stage", "4", "--stop-stage", "9")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    dev = " --device cpu"
    expected = [
        "train-lda-mllt data/train data/lang exp/tri1_ali_train exp/tri2 --config conf/tri2.yaml",
        "align data/train data/lang exp/tri2 exp/tri2_ali_train --config conf/tri2.yaml",
        "train-sat data/train data/lang exp/tri2_ali_train exp/tri3 --config conf/tri3.yaml",
        "align data/train_sp data/lang exp/tri3 exp/tri3_ali_train_sp --config conf/tri3.yaml",
        "align data/test data/lang exp/tri3 exp/tri3_ali_test --config conf/tri3.yaml",
        "align data/test data/lang exp/mono exp/mono_ali_test --config conf/mono.yaml",
        "align data/test data/lang exp/tri1 exp/tri1_ali_test --config conf/tri1.yaml",
        "align data/test data/lang exp/tri2 exp/tri2_ali_test --config conf/tri2.yaml",
        "train-teachers data/train_sp exp/tri3_ali_train_sp exp --config conf/teachers.yaml",
        "make-graph data/lang exp/tri3 exp/graph --config conf/graph.yaml",
        "make-graph data/lang exp/mono exp/graph_mono --config conf/graph.yaml",
        "make-graph data/lang exp/tri1 exp/graph_tri1 --config conf/graph.yaml",
        "make-graph data/lang exp/tri2 exp/graph_tri2 --config conf/graph.yaml",
    ]
    found = iter(calls)  # in this order; make-graph takes no device
    for e in expected:
        want = e if e.startswith("make-graph") else e + dev
        assert any(c == want for c in found), (want, calls)
    decodes = [c for c in calls if c.startswith("decode --system tri")]
    assert decodes == [
        f"decode --system {s} exp/{s}/final.mdl {g} data/test exp/{s}/decode_test --ali-dir "
        f"exp/{s}_ali_test --config conf/decode_gmm.yaml --decoder auto{dev}"
        for s, g in (("tri1", "exp/graph_tri1"), ("tri2", "exp/graph_tri2"),
                     ("tri3", "exp/graph"))]
    assert (tmp_path / "recipes/an4/conf/tri3.yaml").is_file()


def test_recipe_stages_for_gmm_tri2_unchanged(tmp_path):
    """`--gmm tri2` keeps its stages (tri1 beside it with exp/graph_tri1), and an unknown GMM
    is refused before any stage runs."""
    proc, calls = _stage_calls(tmp_path, "--gmm", "tri2", "--stage", "4", "--stop-stage", "9")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not any(c.startswith("train-sat") or "tri3" in c for c in calls)
    assert "make-graph data/lang exp/tri1 exp/graph_tri1 --config conf/graph.yaml" in calls
    assert any(c.startswith("decode --system tri2 exp/tri2/final.mdl exp/graph ") for c in calls)
    proc, calls = _stage_calls(tmp_path / "bad", "--gmm", "tri4", "--stage", "4")
    assert proc.returncode == 1 and "unknown --gmm tri4" in proc.stderr and calls == []
