"""Cross-fitted teachers (asr_kd.train.crossfit): K ensembles, each trained without one fold of
the training utterances, and soft targets that give every utterance the ensemble that never
heard it. On the yesno recipe's real audio: the folds partition the training utterances (speed
copies with their originals, validation in none), each fold's ensemble trains on the others
alone, and the cached targets are exactly the right ensemble's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from asr_kd.acoustic import EnsembleAcousticModel, load_acoustic_model
from asr_kd.acoustic.soft_targets import topk_renormalised
from asr_kd.steps.common import load_dir_feats
from asr_kd.train.trainer import TrainConfig, original_utt, split_utts


def test_folds_partition_the_training_utterances_and_copies_follow_their_original():
    utts = [f"{p}u{i:02d}" for i in range(30) for p in ("", "sp0.9-", "sp1.1-")]
    cfg = TrainConfig(valid_fraction=0.1, seed=5, folds=3)
    train, valid = split_utts(utts, cfg)
    heard = []
    for k in (1, 2, 3):
        train_k, valid_k = split_utts(utts, TrainConfig(valid_fraction=0.1, seed=5, folds=3,
                                                        fold=k))
        assert valid_k == valid and set(train_k) < set(train)
        left_out = set(train) - set(train_k)
        # 27 training originals in folds of 9, each with its two copies
        assert len(left_out) == 27 and len({original_utt(u) for u in left_out}) == 9
        assert {original_utt(u) for u in left_out}.isdisjoint(original_utt(u) for u in train_k)
        heard.append(left_out)
    assert set().union(*heard) == set(train) and sum(map(len, heard)) == len(train)
    with pytest.raises(ValueError, match="folds: expected 0 .none. or at least 2"):
        TrainConfig(folds=1)
    with pytest.raises(ValueError, match="fold in 0..folds; got folds=2, fold=3"):
        TrainConfig(folds=2, fold=3)


def _asr_kd(rdir, *argv):
    return subprocess.run([sys.executable, "-m", "asr_kd", *map(str, argv), "--device", "cpu"],
                          cwd=rdir, text=True, capture_output=True, timeout=900)


def test_crossfit_teachers_label_each_utterance_with_the_fold_that_never_heard_it(yesno_run,
                                                                                  monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)  # feats.scp paths are relative to the recipe dir
    data, ali = "data/train_yesno", "exp/mono_ali_train_yesno"
    proc = _asr_kd(rdir, "train-teachers", data, ali, "exp/crossfit", "--config",
                   "conf/teachers.yaml", "--set", "folds=2", "--set", "epochs=1",
                   "--set", "members=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = json.loads((rdir / "exp/crossfit/folds.json").read_text())
    assert [f["ensemble"] for f in spec["folds"]] == ["fold_1/ensemble/final.pt",
                                                      "fold_2/ensemble/final.pt"]
    d, feats = load_dir_feats(rdir / data)
    train, valid = split_utts(sorted(feats), TrainConfig(valid_fraction=0.1, seed=0))
    held = [set(f["held_out"]) for f in spec["folds"]]
    assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(train)
    assert abs(len(held[0]) - len(held[1])) <= 1
    for k in (1, 2):  # each fold's ensemble trained on the other fold alone
        history = json.loads((rdir / f"exp/crossfit/fold_{k}/teachers/history.json")
                             .read_text())
        assert len(history) == 1
    log = (rdir / "exp/crossfit/log/train-teachers.log").read_text()
    assert f"on {len(held[1])} utterances" in log and f"on {len(held[0])} utterances" in log

    proc = _asr_kd(rdir, "train-student", data, ali, "exp/student_crossfit", "--config",
                   "conf/student.yaml", "--teacher", "exp/crossfit/folds.json",
                   "--set", "epochs=1", "--set", "distill.source=topk")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cache = next((rdir / "exp/crossfit/soft_targets").glob("arithmetic_T2_k*"))
    index = json.loads((cache / "index.json").read_text())
    ids, probs = np.load(cache / "ids.npy"), np.load(cache / "probs.npy")
    models = [load_acoustic_model(rdir / "exp/crossfit" / f["ensemble"], "cpu")
              for f in spec["folds"]]
    everyone = EnsembleAcousticModel([m for e in models for m in e.members])
    for utt, teacher in [(sorted(held[0])[0], models[0]), (sorted(held[1])[0], models[1]),
                         (valid[0], everyone)]:
        logp = teacher.log_posteriors([torch.from_numpy(feats[utt])], 2.0)[0]
        want_ids, want_p, _ = topk_renormalised(logp, index["top_k"])
        o, n = index["utts"][utt]
        assert np.array_equal(ids[o:o + n], want_ids.numpy()), utt
        np.testing.assert_allclose(probs[o:o + n], want_p.numpy(), rtol=1e-5, atol=1e-6)

    proc = _asr_kd(rdir, "train-student", data, ali, "exp/student_crossfit_online", "--config",
                   "conf/student.yaml", "--teacher", "exp/crossfit/folds.json",
                   "--set", "epochs=1", "--set", "distill.source=online")
    assert proc.returncode != 0
    assert ("exp/crossfit/folds.json: cross-fitted teachers give each utterance its own fold's "
            "soft targets, computed once: set distill.source: topk") in proc.stderr
