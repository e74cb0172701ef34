"""The yesno recipe end to end on real audio: Kaldi's result, alignments, reruns."""

from __future__ import annotations

import json
import time

import kaldiio
import numpy as np

from asr_kd.hmm.model import GmmHmm
from asr_kd.steps.common import read_int_vectors
from tests.conftest import run_recipe


def test_every_system_scores_zero_wer(yesno_run):
    rdir, proc = yesno_run
    results = json.loads((rdir / "exp/results.json").read_text())
    assert results["corpus"] == "yesno" and results["test_set"] == "test_yesno"
    for name in ("mono", "dnn"):
        s = results["systems"][name]
        assert s["wer"] == 0.0, s
        assert s["kaldi_line"] == "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]"
        assert s["params"] > 0
        hyp = (rdir / s["hyp"]).read_text().splitlines()
        assert len(hyp) == 29
    # Results table printed by the last stage, and the GMM and DNN classify most frames right.
    assert "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]" in proc.stdout
    assert results["systems"]["dnn"]["frame_acc"] > 80.0
    assert (rdir / "exp/RESULTS.md").exists() and (rdir / "exp/plots/results.png").exists()


def test_alignments_cover_features_and_start_and_end_in_silence(yesno_run):
    rdir, _ = yesno_run
    model = GmmHmm.load(rdir / "exp/mono/final.mdl")
    sil = 1  # phones.txt: SIL is 1
    for set_name, n_utts in (("train_yesno", 31), ("test_yesno", 29)):
        feats = dict(kaldiio.load_scp(str(rdir / f"data/{set_name}/feats.scp")))
        tids = read_int_vectors(rdir / f"exp/mono_ali_{set_name}/tid.ark")
        pdfs = read_int_vectors(rdir / f"exp/mono_ali_{set_name}/ali.ark")
        assert len(tids) == n_utts
        for utt, t in tids.items():
            assert len(t) == feats[utt].shape[0] == len(pdfs[utt])
            phones = model.tm.tid2phone[t]
            assert phones[0] == sil and phones[-1] == sil, utt
            assert np.array_equal(model.tm.tid2pdf[t], pdfs[utt])
    priors = (rdir / "exp/mono_ali_train_yesno/priors").read_text()
    counts = [int(x) for x in priors.strip("[] \n").split()]
    assert len(counts) == int((rdir / "exp/mono_ali_train_yesno/num_pdfs").read_text()) == 11
    assert all(c > 0 for c in counts)


def test_rerun_skips_finished_stages(yesno_run):
    rdir, _ = yesno_run
    before = (rdir / "exp/dnn/final.pt").stat().st_mtime_ns
    t0 = time.time()
    proc = run_recipe(rdir, "--device", "cpu", "--stage", "2")
    assert proc.returncode == 0, proc.stderr
    for out in ("data/lang", "data/train_yesno", "exp/mono", "exp/mono_ali_train_yesno",
                "exp/dnn", "exp/graph", "exp/mono/decode_test_yesno"):
        assert f"{out} is done; skipping" in proc.stdout, out
    assert (rdir / "exp/dnn/final.pt").stat().st_mtime_ns == before
    assert "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]" in proc.stdout
    assert time.time() - t0 < 120
