"""The FSDD recipe end to end on real audio (CI config): Table 1, the sweeps, Table 5, and
`asr-kd evaluate` on a user's data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.score.wer import compute_wer
from tests.conftest import REPO, copy_recipe, corpus, run_recipe

SYSTEMS = {"mono", "teacher_1", "teacher_2", "teacher_3", "ensemble", "student_hard",
           "student_kd"}


@pytest.fixture(scope="session")
def fsdd_run(tmp_path_factory):
    corpus("fsdd")
    rdir = copy_recipe("fsdd", tmp_path_factory.mktemp("fsdd"))
    # The CI schedule, with a two-point temperature sweep (the full one is T = 1, 2, 5, 10).
    proc = run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--temperatures", "1 10",
                      "--alphas", "", timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
    assert proc.returncode == 0, "fsdd recipe failed"
    return rdir, json.loads((rdir / "exp/results.json").read_text())


def test_table1(fsdd_run):
    rdir, results = fsdd_run
    systems = results["systems"]
    assert set(systems) == SYSTEMS
    teachers = [systems[f"teacher_{k}"] for k in (1, 2, 3)]
    ens, hard, kd = systems["ensemble"], systems["student_hard"], systems["student_kd"]
    # The ensemble averages its members' posteriors: its size is theirs summed.
    assert ens["params"] == sum(t["params"] for t in teachers)
    assert ens["flops_per_frame"] == sum(t["flops_per_frame"] for t in teachers)
    assert kd["params"] == hard["params"] < teachers[0]["params"]
    assert ens["frame_acc"] > max(t["frame_acc"] for t in teachers)
    # student_kd beating student_hard is the goal, not yet a reliable outcome on FSDD
    # (see the issue note), so it is reported, not asserted.
    assert results["kept"] == pytest.approx(
        (kd["frame_acc"] - hard["frame_acc"]) / (ens["frame_acc"] - hard["frame_acc"]),
        abs=1e-3)
    for name, s in systems.items():
        assert s["wer"] <= 5.0, (name, s["kaldi_line"])  # CI run: at most 3.0%
        assert len((rdir / s["hyp"]).read_text().splitlines()) == 200
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "kept = (student_kd - student_hard) / (ensemble - student_hard)" in md


def test_sweeps_and_table5(fsdd_run):
    rdir, results = fsdd_run
    sweep = {(r["temperature"], r["alpha"]) for r in results["sweep"]}
    assert sweep == {(1, 0.5), (10, 0.5)}
    share = {r["targets"]: r for r in results["share"]}
    assert set(share) == {"hard", "soft"}
    for r in share.values():
        assert r["percent"] == 3 and r["utts"] == round(0.03 * 1620)
        assert len(r["valid_acc_by_epoch"]) == len(r["train_acc_by_epoch"]) > 1
    # Soft targets as a regulariser (the paper's section 6): at 3% of the data they beat hard
    # targets by several points (CI config: 52.6% vs 43.1%; full config: 58.5% vs 45.9%).
    assert share["soft"]["test_frame_acc"] > share["hard"]["test_frame_acc"] + 3
    for plot in ("results", "temperature", "share"):
        assert (rdir / f"exp/plots/{plot}.png").stat().st_size > 1000
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "## Temperature and alpha sweep" in md and "## Table 5" in md


def test_evaluate_on_a_users_data_dir(fsdd_run, tmp_path):
    """A data dir made of one test speaker's utterances (so its per-speaker CMVN is the same as
    in the full test set) gets exactly the hypotheses the recipe's decode gave them."""
    rdir, results = fsdd_run
    test = load_data_dir(rdir / "data/test")
    utts = [u for u in test.utts if test.utt2spk[u] == "jackson"]
    user = tmp_path / "my_recordings"
    write_data_dir(user, {u: test.wav[u] for u in utts}, {u: test.text[u] for u in utts},
                   {u: "jackson" for u in utts})
    proc = subprocess.run([sys.executable, "-m", "asr_kd", "evaluate", str(rdir), str(user),
                           "--system", "student_kd", "--device", "cpu"], cwd=tmp_path,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    recipe_hyps = {line.split()[0]: line.split()[1:] for line in
                   (rdir / results["systems"]["student_kd"]["hyp"]).read_text().splitlines()}
    expected = compute_wer({u: test.text[u] for u in utts}, {u: recipe_hyps[u] for u in utts})
    assert f"student_kd: {expected.kaldi_line()}" in proc.stdout
    out = rdir / "exp/student_kd/decode_eval_my_recordings/hyp.txt"
    assert out.read_text().splitlines() == [" ".join([u] + recipe_hyps[u]) for u in utts]
