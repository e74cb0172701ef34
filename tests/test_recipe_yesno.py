"""The yesno recipe end to end on real audio: Kaldi's result, alignments, reruns."""

from __future__ import annotations

import json
import time

import kaldiio
import numpy as np
import pytest

from asr_kd.hmm.model import GmmHmm
from asr_kd.steps.common import read_int_vectors
from tests.conftest import run_recipe

# What the recipe reaches today: one error for every system, a YES inserted before the first
# word of 1_1_1_1_0_1_0_0, whose first 0.2 s hold a decaying sound ~20 dB above the corpus's
# silence; every model scores it as the end of a YES (see README, "yesno").
MAX_ERRORS = {"mono": 1, "teacher_1": 1, "teacher_2": 1, "teacher_3": 1, "ensemble": 1,
              "student_hard": 1, "student_kd": 1}


def test_results_contract_and_wer(yesno_run):
    rdir, proc = yesno_run
    results = json.loads((rdir / "exp/results.json").read_text())
    assert results["corpus"] == "yesno" and results["test_set"] == "test_yesno"
    for name, max_errors in MAX_ERRORS.items():
        s = results["systems"][name]
        errors = round(s["wer"] * 232 / 100)
        assert errors <= max_errors, s
        assert s["kaldi_line"] == (f"%WER {s['wer']:.2f} [ {errors} / 232, {errors} ins, "
                                   f"0 del, 0 sub ]")
        assert s["kaldi_line"] in proc.stdout  # the results table is printed
        assert s["params"] > 0
        assert len((rdir / s["hyp"]).read_text().splitlines()) == 29
    assert set(results["systems"]) == set(MAX_ERRORS)
    # Frame accuracy is scored against the test set's monophone alignments. A floor from the
    # data alone: always guessing the commonest pdf there scores `chance` (a silence state with
    # a fifth of the frames: 19.79% in a run).
    counts = np.bincount(np.concatenate(list(read_int_vectors(
        rdir / "exp/mono_ali_test_yesno/ali.ark").values())))
    chance = 100 * counts.max() / counts.sum()
    # The fixed bounds are docs/results/yesno.md's run of this recipe with the same conf/
    # (mono 90.32, the DNNs 84.83-87.67), about 5 points lower.
    assert results["systems"]["mono"]["frame_acc"] > 85.0
    for name in MAX_ERRORS:
        assert results["systems"][name]["frame_acc"] > max(80.0, chance), (name, chance)
    assert (rdir / "exp/RESULTS.md").exists() and (rdir / "exp/plots/results.png").exists()


@pytest.mark.xfail(strict=True, reason="one insertion; Kaldi's own 0.00% depends on the random "
                   "seeds of its flat start (README)")
def test_every_system_matches_kaldis_zero_wer(yesno_run):
    rdir, _ = yesno_run
    results = json.loads((rdir / "exp/results.json").read_text())
    for name in MAX_ERRORS:
        assert results["systems"][name]["kaldi_line"] == \
            "%WER 0.00 [ 0 / 232, 0 ins, 0 del, 0 sub ]"


def test_alignments_cover_features_and_start_and_end_in_silence(yesno_run, monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)  # feats.scp paths are relative to the recipe dir, as in Kaldi
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
    before = (rdir / "exp/student_kd/final.pt").stat().st_mtime_ns
    t0 = time.time()
    proc = run_recipe(rdir, "--device", "cpu", "--stage", "2")
    assert proc.returncode == 0, proc.stderr
    for out in ("data/lang", "data/train_yesno", "exp/mono", "exp/mono_ali_train_yesno", "exp",
                "exp/student_kd", "exp/graph", "exp/mono/decode_test_yesno"):
        assert f"{out} is done; skipping" in proc.stdout, out
    assert (rdir / "exp/student_kd/final.pt").stat().st_mtime_ns == before
    results = json.loads((rdir / "exp/results.json").read_text())
    assert results["systems"]["mono"]["kaldi_line"] in proc.stdout
    assert time.time() - t0 < 120
