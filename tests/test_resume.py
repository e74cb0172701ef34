"""Killed with SIGKILL in the middle of a stage, then rerun: the job finishes with exactly the
numbers of a run that was never interrupted (real yesno audio, CPU)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asr_kd.features import load_feats
from asr_kd.utils.io import is_done
from tests.conftest import REPO, run_recipe

# Outputs of stages 6-10, left out when the finished yesno run is copied.
LATER_STAGES = ("teachers", "teacher_*", "ensemble", "student_*", ".teachers", "sweep", "share",
                "results.json", "RESULTS.md")


def _copy_up_to_stage_5(rdir: Path, dest: Path) -> Path:
    """The finished yesno recipe dir (stages 0-5 done) under dest/recipes/yesno, without the
    outputs of stages 6-10."""
    (dest / "recipes").mkdir(parents=True)
    (dest / "recipes" / "common").symlink_to(REPO / "recipes" / "common")
    (dest / "local").symlink_to(REPO / "local")
    out = dest / "recipes" / "yesno"
    shutil.copytree(rdir, out, ignore=shutil.ignore_patterns(*LATER_STAGES), symlinks=True)
    return out


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL the whole process group as soon as ready() is true."""
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.time() - t0 < timeout, "timed out waiting for the moment to kill"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# Teachers with dropout (the resumed run must restore the dropout RNG too) and enough epochs
# that the kill lands mid-training.
TEACHERS = """
model:
  class: mlp
  args: {left_context: 5, right_context: 5, hidden_dim: 256, num_layers: 2, dropout: 0.1}
members: 3
epochs: 20
batch_size: 64
chunk_size: 16
lr: 0.001
valid_fraction: 0.1
seed: 0
"""


def test_sigkill_in_teacher_training_then_rerun_gives_the_same_results(yesno_run, tmp_path):
    rdir, _ = yesno_run
    runs = {}
    for name in ("straight", "killed"):
        d = _copy_up_to_stage_5(rdir, tmp_path / name)
        (d / "conf" / "teachers.yaml").write_text(TEACHERS)
        runs[name] = d
    args = ["--stage", "6", "--stop-stage", "10", "--device", "cpu"]

    assert run_recipe(runs["straight"], *args).returncode == 0
    killed = runs["killed"]
    proc = _start(["bash", "run.sh", *args], killed)
    _kill_when(proc, lambda: (killed / "exp/teachers/epoch-4.pt").exists())
    assert not is_done(killed / "exp", "teachers")
    assert not (killed / "exp/teachers/epoch-20.pt").exists()
    proc = run_recipe(killed, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr

    a, b = ((runs[n] / "exp/results.json").read_text() for n in ("straight", "killed"))
    assert a == b
    for k in (1, 2, 3):
        sa, sb = (torch.load(runs[n] / f"exp/teacher_{k}/final.pt", weights_only=True)
                  for n in ("straight", "killed"))
        for name, t in sa["state_dict"].items():
            assert torch.equal(t, sb["state_dict"][name]), (k, name)


def test_sigkill_in_feature_extraction_then_rerun_gives_the_same_features(yesno_run, tmp_path,
                                                                          monkeypatch):
    """wav.scp entries as pipes that wait 0.15 s each (Kaldi allows commands there) make the
    extraction last long enough to be killed in the middle."""
    rdir, _ = yesno_run
    src = rdir / "data/train_yesno"
    data = tmp_path / "train_yesno"
    data.mkdir()
    for f in ("text", "utt2spk", "spk2utt"):
        shutil.copy(src / f, data / f)
    lines = []
    for line in (src / "wav.scp").read_text().splitlines():
        utt, path = line.split(maxsplit=1)
        lines.append(f"{utt} sleep 0.15 && cat {(rdir / path).resolve()} |")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "asr_kd", "compute-feats", str(data), "--allow-pipes",
           "--config", str(rdir / "conf/fbank.yaml"), "--device", "cpu"]

    proc = _start(cmd, tmp_path)
    started = time.time()
    _kill_when(proc, lambda: time.time() - started > 2.0)  # about a third of the way in
    assert not is_done(data, "feats")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-3000:]

    utt2spk = dict(line.split() for line in (src / "utt2spk").read_text().splitlines())
    got = load_feats(data, utt2spk, apply_cmvn=True)
    monkeypatch.chdir(rdir)  # the recipe's feats.scp names its arks relative to the recipe dir
    want = load_feats("data/train_yesno", utt2spk, apply_cmvn=True)
    assert sorted(got) == sorted(want)
    for utt, x in want.items():
        np.testing.assert_array_equal(got[utt], x, err_msg=utt)
