"""Killed with SIGKILL in the middle of a stage, then rerun: the job finishes with exactly the
numbers of a run that was never interrupted (real yesno audio, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from asr_kd.features import load_feats
from asr_kd.utils.io import is_done
from tests.conftest import REPO, recipes_dir, run_recipe

# Outputs of stages 6-10, and of stages 3-10.
LATER_THAN_5 = ["exp/teachers", "exp/teacher_*", "exp/ensemble", "exp/student_*", "exp/.teachers",
                "exp/results.json", "exp/RESULTS.md"]
LATER_THAN_2 = ["exp", "data/*/feats.*", "data/*/cmvn.*", "data/*/.feats", "data/*/fbank.yaml"]


def _copy_run(rdir: Path, dest: Path, drop: list[str]) -> Path:
    """The finished yesno recipe dir under dest/recipes/yesno, without the files that match
    `drop` (globs relative to the recipe dir): the outputs of the stages to run again."""
    out = recipes_dir(dest) / "yesno"
    shutil.copytree(rdir, out, symlinks=True)
    for pattern in drop:
        for p in out.glob(pattern):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
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
        d = _copy_run(rdir, tmp_path / name, LATER_THAN_5)
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

    # Every figure equal; the report's own provenance (when it ran) is left out.
    a, b = ({k: v for k, v in json.loads((runs[n] / "exp/results.json").read_text()).items()
             if k != "provenance"} for n in ("straight", "killed"))
    assert a == b
    for k in (1, 2, 3):
        sa, sb = (torch.load(runs[n] / f"exp/teacher_{k}/final.pt", weights_only=True)
                  for n in ("straight", "killed"))
        for name, t in sa["state_dict"].items():
            assert torch.equal(t, sb["state_dict"][name]), (k, name)


def test_sigkill_in_feature_extraction_then_rerun_gives_the_same_features(yesno_run, tmp_path,
                                                                          monkeypatch):
    """The recipe killed in stage 3 and rerun computes exactly the features of the uninterrupted
    run. wav.scp entries as commands that wait 0.1 s each (Kaldi allows `cmd |` there) make the
    stage last long enough to be killed in the middle."""
    rdir, _ = yesno_run
    d = _copy_run(rdir, tmp_path, LATER_THAN_2)
    for part in ("train_yesno", "test_yesno"):
        scp = d / "data" / part / "wav.scp"
        lines = [line.split(maxsplit=1) for line in scp.read_text().splitlines()]
        scp.write_text("".join(f"{utt} sleep 0.1 && cat {(rdir / path).resolve()} |\n"
                               for utt, path in lines))
    args = ["--stage", "3", "--stop-stage", "3", "--device", "cpu", "--allow-pipes"]

    proc = _start(["bash", "run.sh", *args], d)
    started = time.time()
    _kill_when(proc, lambda: time.time() - started > 3.0)  # train_yesno takes about 4 s
    assert not is_done(d / "data/train_yesno", "feats")
    proc = run_recipe(d, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    for part in ("train_yesno", "test_yesno"):
        utt2spk = dict(line.split() for line in
                       (d / "data" / part / "utt2spk").read_text().splitlines())
        feats = {}
        for run_dir in (rdir, d):  # each feats.scp names its arks relative to its recipe dir
            monkeypatch.chdir(run_dir)
            feats[run_dir] = load_feats(f"data/{part}", utt2spk, apply_cmvn=True)
        assert sorted(feats[d]) == sorted(feats[rdir]) == sorted(utt2spk)
        for utt, x in feats[rdir].items():
            np.testing.assert_array_equal(feats[d][utt], x, err_msg=utt)
