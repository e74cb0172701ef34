"""tri2 (LDA+MLLT, asr_kd.hmm.train_lda_mllt) on the real yesno audio, from the recipe's
monophone alignments: `asr-kd train-lda-mllt` and `asr-kd align` with a tri2 config, the model's
40-dim features and Kaldi's final.mat, a rising MLLT objective, the alignment against the
source's, and a decode of test_yesno. Also the GMM feature config's splice and transform on
their own, and old checkpoints without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from asr_kd.features import as_tensors
from asr_kd.features.transforms import splice
from asr_kd.hmm.lda_mllt import read_kaldi_matrix
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.train_lda_mllt import Tri2Config, train_lda_mllt
from asr_kd.steps.common import load_dir_feats, read_int_vectors
from asr_kd.utils.config import load_config
from tests.conftest import REPO, copy_recipe, corpus, run_recipe

# Small enough for two busy cores (about 5 s of training): the tri1 test's schedule
# (tests/test_tree.py) with MLLT on three of its ten rounds.
TRI2 = {"num_iters": 10, "max_iter_inc": 6, "total_gauss": 100, "realign_iters": [5],
        "mllt_iters": [2, 4, 6], "splice": 3, "lda_dim": 40, "seed": 0,
        "tree": {"num_leaves": 16, "min_count": 20, "min_gain": 0},
        "feature": {"type": "mfcc", "num_ceps": 13, "delta_order": 0}}


def asr_kd(*args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "asr_kd", *args, "--device", "cpu"], cwd=cwd,
                          env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def yesno_tri2(tmp_path_factory):
    """The yesno recipe up to its monophone alignments (stages 0-5), then tri2 trained on
    them and used to align test_yesno, both through the command line."""
    corpus("yesno")
    rdir = copy_recipe("yesno", tmp_path_factory.mktemp("yesno_tri2"))
    proc = run_recipe(rdir, "--device", "cpu", "--stop-stage", "5")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (rdir / "conf/tri2_test.yaml").write_text(yaml.safe_dump(TRI2))
    asr_kd("train-lda-mllt", "data/train_yesno", "data/lang", "exp/mono_ali_train_yesno",
           "exp/tri2", "--config", "conf/tri2_test.yaml", cwd=rdir)
    # align reads a tri2 config too (the recipes pass conf/$gmm.yaml)
    asr_kd("align", "data/test_yesno", "data/lang", "exp/tri2", "exp/tri2_ali_test_yesno",
           "--config", "conf/tri2_test.yaml", cwd=rdir)
    return rdir


def test_model_features_and_final_mat(yesno_tri2, monkeypatch):
    rdir = yesno_tri2
    model = GmmHmm.load(rdir / "exp/tri2/final.mdl")
    f = model.feature
    assert (f.splice, f.delta_order, f.num_ceps) == (3, 0, 13)
    assert f.transform.shape == (40, 13 * 7) and f.transform.dtype == torch.float32
    assert model.gmm.means.shape[-1] == 40 and model.num_pdfs == 16
    # final.mat is Kaldi's binary float matrix of the same LDA+MLLT transform
    assert (rdir / "exp/tri2/final.mat").read_bytes()[:6] == b"\0BFM \4"
    assert torch.equal(read_kaldi_matrix(rdir / "exp/tri2/final.mat"), f.transform.double())
    monkeypatch.chdir(rdir)
    _, feats = load_dir_feats("data/test_yesno")
    x = torch.from_numpy(next(iter(feats.values())))
    y = f.apply(x)
    assert y.shape == (x.shape[0], 40)
    assert model.log_likelihoods(x).shape == (x.shape[0], 16)
    run = json.loads((rdir / "exp/tri2/run.json").read_text())
    assert run["role"] == "gmm" and run["settings"] == {"kind": "tri2"}
    assert run["ali"] == "exp/mono_ali_train_yesno"


def test_mllt_objective_rises_on_every_update(yesno_tri2):
    mllt = json.loads((yesno_tri2 / "exp/tri2/run.json").read_text())["mllt"]
    assert [m["iter"] for m in mllt] == TRI2["mllt_iters"]
    for m in mllt:
        # est-mllt starts from the identity (the current features), so any gain is MLLT's;
        # silence frames (about half of yesno's) are left out of its statistics
        assert m["objective_after"] > m["objective_before"], m
        assert 5000 < m["frames"] < 15000, m
    assert mllt[0]["objective_after"] - mllt[0]["objective_before"] > 0.05  # 0.40 in a run


def test_alignment_agrees_with_the_source(yesno_tri2):
    """tri2's test_yesno alignment against the monophone one it was trained from: the same
    phone on nearly every frame (97% in a run; tri1 with the same schedule: 98%)."""
    rdir = yesno_tri2
    tri2, mono = (GmmHmm.load(rdir / f"exp/{m}/final.mdl") for m in ("tri2", "mono"))
    a = read_int_vectors(rdir / "exp/tri2_ali_test_yesno/tid.ark")
    b = read_int_vectors(rdir / "exp/mono_ali_test_yesno/tid.ark")
    assert set(a) == set(b) and len(a) == 29
    same = np.concatenate([tri2.tm.tid2phone[a[u]] == mono.tm.tid2phone[b[u]] for u in b])
    assert same.mean() > 0.95, same.mean()
    pdfs = read_int_vectors(rdir / "exp/tri2_ali_test_yesno/ali.ark")
    assert all(np.array_equal(pdfs[u], tri2.tm.tid2pdf[a[u]]) for u in a)


def test_decodes_test_yesno(yesno_tri2, monkeypatch):
    """make-graph and decode read tri2's model unchanged. As for tri1 (tests/test_tree.py): at
    most 3 insertions and no word lost or confused (1 insertion in a run, tri1 3)."""
    from asr_kd.decode import DecodeConfig
    from asr_kd.decode.graph import GraphConfig
    from asr_kd.steps.decode import run_decode
    from asr_kd.steps.graph import run_make_graph

    monkeypatch.chdir(yesno_tri2)
    run_make_graph("data/lang", "exp/tri2", "exp/tri2/graph", GraphConfig())
    scores = run_decode("tri2", "exp/tri2/final.mdl", "exp/tri2/graph", "data/test_yesno",
                        "exp/tri2/decode_test_yesno", DecodeConfig(), torch.device("cpu"),
                        ali_dir="exp/tri2_ali_test_yesno", decoder="reference")
    w = scores["wer_detail"]
    assert w["subs"] == 0 and w["dels"] == 0 and w["ins"] <= 3, scores["kaldi_line"]
    assert scores["frame_acc"] > 70, scores["frame_acc"]  # 86% in a run
    # The report's size counts the 40 x 91 matrix beside the Gaussians (2 x 40 + 1 each).
    model = GmmHmm.load("exp/tri2/final.mdl")
    gauss = int(torch.isfinite(model.gmm.log_weights).sum())
    assert scores["params"] == gauss * 81 + 40 * 91
    assert scores["flops_per_frame"] == gauss * 4 * 40 + 2 * 40 * 91


def test_train_lda_mllt_in_process_matches_and_checks(yesno_tri2, monkeypatch):
    """The library call with the same config gives the command's model (deterministic), and
    a config that would splice deltas is refused."""
    from asr_kd.lang import load_lang

    monkeypatch.chdir(yesno_tri2)
    cfg = load_config(Tri2Config, "conf/tri2_test.yaml")
    lang = load_lang("data/lang")
    d, feats = load_dir_feats("data/train_yesno")
    src = GmmHmm.load("exp/mono_ali_train_yesno/final.mdl")
    alis = read_int_vectors("exp/mono_ali_train_yesno/tid.ark")
    bad = load_config(Tri2Config, "conf/tri2_test.yaml", ["feature.delta_order=2"])
    with pytest.raises(ValueError, match="delta_order is 2; tri2 splices the base cepstra"):
        train_lda_mllt(lang, as_tensors(feats), d.text, src, alis, bad, torch.device("cpu"))
    # The command ran on one thread; LAPACK's eigensolver differs in the last bits between
    # thread counts (2e-11 on 91 dims), so the same model needs the same count here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, mllt = train_lda_mllt(lang, as_tensors(feats), d.text, src, alis, cfg,
                                     torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    saved = GmmHmm.load("exp/tri2/final.mdl")
    assert torch.equal(model.feature.transform, saved.feature.transform)
    assert torch.equal(model.gmm.means, saved.gmm.means)
    assert len(mllt) == 3


# ----------------------------------------------------------------------------- feature config


def test_splice_and_transform_apply():
    g = torch.Generator().manual_seed(0)
    fbank = torch.randn(50, 23, generator=g)
    m = torch.randn(5, 13 * 5, generator=g)
    f = GmmFeatureConfig(delta_order=0, splice=2).with_transform(m)
    base = GmmFeatureConfig(delta_order=0).apply(fbank)  # [50, 13]
    assert torch.allclose(f.apply(fbank), splice(base, 2, 2) @ m.T, atol=1e-5)
    assert GmmFeatureConfig(delta_order=0, splice=2).apply(fbank).shape == (50, 65)
    with pytest.raises(ValueError, match=r"feature transform is \(5, 65\), features have 39"):
        GmmFeatureConfig(splice=0).with_transform(m).apply(fbank)
    with pytest.raises(ValueError, match="feature.transform is learned"):
        load_config(Tri2Config, None, ["feature.transform=[[1, 0], [0, 1]]"])


def test_checkpoints_without_splice_or_transform_still_load(yesno_tri2):
    """Models saved before tri2 have neither key in their feature config."""
    obj = torch.load(yesno_tri2 / "exp/mono/final.mdl", weights_only=True)
    obj["feature"] = {k: v for k, v in obj["feature"].items()
                      if k not in ("splice", "transform")}
    model = GmmHmm.from_checkpoint(obj)
    assert model.feature == GmmFeatureConfig()
    # and models without them are saved as before, key for key
    assert set(model.feature.state_dict()) == {"type", "num_ceps", "cepstral_lifter",
                                               "delta_order"}
    assert model.feature.apply(torch.zeros(7, 23)).shape == (7, 39)
