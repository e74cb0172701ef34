"""The report reads each run's role from its run.json, not from folder names, and its kept
figures agree with numbers worked out by hand from the scores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from asr_kd.score.report import make_report
from asr_kd.utils.runinfo import config_sha256, read_run, write_run

DETAIL = {"words": 10, "ins": 0, "dels": 0, "subs": 1, "errors": 1}


def _run(exp, rel, role, frame_acc, wer=10.0, valid_acc=50.0, **fields):
    d = exp / rel
    (d / "decode_test").mkdir(parents=True)
    write_run(d, role, fields.pop("settings", {}), **fields)
    (d / "decode_test" / "scores.json").write_text(json.dumps({
        "wer": wer, "frame_acc": frame_acc, "params": 100, "flops_per_frame": 200,
        "hyp": str(d / "decode_test" / "hyp.txt"), "wer_detail": DETAIL, "search_rtfx": 1.0,
        "kaldi_line": f"%WER {wer:.2f} [ 1 / 10, 0 ins, 0 del, 1 sub ]", "score_map": None}))
    (d / "history.json").write_text(json.dumps(
        [{"members": [{"valid_acc": valid_acc, "train_acc": 55.0}]}]))
    (d / "train_eval.json").write_text(json.dumps(
        {"utts": 3, "frames": 300, "frame_acc": 80.0, "pdfs_seen": 7}))


def _student(exp, rel, role, targets, acc, seed=100, **kw):
    alpha = 0.5 if targets == "soft" else 0.0
    _run(exp, rel, role, acc, settings={"targets": targets, "alpha": alpha, "temperature":
                                        kw.pop("temperature", 2.0), "utt_fraction":
                                        kw.pop("utt_fraction", 1.0), "seed": seed},
         seed=seed, group=kw.pop("group", "student"), **kw)


@pytest.fixture
def exp(tmp_path):
    exp = tmp_path / "exp"
    _run(exp, "mono", "gmm", 40.0, settings={"kind": "mono"})
    _run(exp, "teacher_2", "teacher", 68.0, settings={"member": 2})
    _run(exp, "teacher_1", "teacher", 69.0, settings={"member": 1})
    _run(exp, "ensemble", "ensemble", 70.0)
    # Folder names that say nothing: the roles come from run.json alone.
    _student(exp, "small_a", "student", "hard", 60.0)
    _student(exp, "small_b", "student", "soft", 65.0)
    _student(exp, "tdnn_x", "student", "hard", 62.0, group="student_tdnn")
    _student(exp, "tdnn_y", "student", "soft", 61.0, group="student_tdnn")
    _student(exp, "runs/one", "sweep", "soft", 63.0, temperature=1.0, valid_acc=52.0)
    _student(exp, "runs/two", "sweep", "soft", 66.0, temperature=10.0, valid_acc=51.0)
    _student(exp, "runs/three", "sweep", "soft", 64.0, temperature=4.0, valid_acc=70.0,
             group="student_tdnn")
    _student(exp, "little/h", "share", "hard", 50.0, utt_fraction=0.03)
    _student(exp, "little/s", "share", "soft", 58.0, utt_fraction=0.03)
    _student(exp, "again/a", "seed", "hard", 61.0, seed=101)
    _student(exp, "again/b", "seed", "soft", 63.0, seed=101)
    return exp


def test_report_takes_roles_from_run_json(exp):
    res = make_report(exp, "toy", "test", recipe_dir=exp.parent)["results"]
    assert list(res["systems"]) == ["mono", "teacher_1", "teacher_2", "ensemble", "small_a",
                                    "small_b", "tdnn_x", "tdnn_y"]
    # By hand: (65 - 60) / (70 - 60) and (61 - 62) / (70 - 62).
    assert res["kept"] == 0.5
    # Runs without settings.variant: hard targets are `hard`, soft ones `kd`.
    assert res["kept_by_system"] == {"student_kd": 0.5, "student_tdnn_kd": -0.125}
    assert [(r["run"], r["shape"], r["temperature"]) for r in res["sweep"]] == [
        ("one", "student", 1.0), ("two", "student", 10.0), ("three", "student_tdnn", 4.0)]
    assert [(r["targets"], r["percent"], r["test_frame_acc"]) for r in res["share"]] == [
        ("hard", 3.0, 50.0), ("soft", 3.0, 58.0)]
    # Seeds 100 (the recipe's pair) and 101: kept 0.5 and (63 - 61) / (70 - 61) = 2/9.
    seeds = res["kept_seeds"]["student_kd"]
    assert (seeds["seeds"], seeds["kept"]) == ([100, 101], [0.5, 0.2222])
    assert seeds["kept_mean"] == pytest.approx((0.5 + 0.2222) / 2, abs=1e-4)
    assert seeds["kept_sd"] == pytest.approx(abs(0.5 - 0.2222) / 2 ** 0.5, abs=1e-4)
    assert seeds["kept_of_means"] == pytest.approx((64 - 60.5) / (70 - 60.5), abs=1e-4)
    assert res["kept_seeds"]["student_tdnn_kd"]["seeds"] == [100]
    md = (exp / "RESULTS.md").read_text()
    assert "kept = (small_b - small_a) / (ensemble - small_a) in frame accuracy = **0.50**" in md
    # Each shape's best on validation is chosen among its own sweep runs.
    assert "Best on validation (student_kd): one (T 1, alpha 0.5)." in md
    assert "Best on validation (student_tdnn_kd): three (T 4, alpha 0.5)." in md


def test_results_carry_provenance(exp):
    res = make_report(exp, "toy", "test", recipe_dir=exp.parent)["results"]
    run = res["systems"]["small_b"]["run"]
    assert run["role"] == "student" and run["group"] == "student" and run["seed"] == 100
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert res["provenance"]["commit"] == head.stdout.strip()
    assert res["provenance"]["versions"]["torch"]


def test_run_json_names_role_settings_and_config_hash(tmp_path):
    cfg = {"lr": 0.001, "distill": {"alpha": 0.5, "temperature": 2.0}}
    write_run(tmp_path, "sweep", {"temperature": 2.0}, device="cpu", seed=7, config=cfg,
              group="student")
    run = read_run(tmp_path)
    assert run["role"] == "sweep" and run["settings"] == {"temperature": 2.0}
    p = run["provenance"]
    assert p["device"] == "cpu" and p["seed"] == 7
    # The same config with its keys in another order hashes the same; another value does not.
    assert p["config_sha256"] == config_sha256({"distill": {"temperature": 2.0, "alpha": 0.5},
                                                "lr": 0.001})
    assert p["config_sha256"] != config_sha256({**cfg, "lr": 0.002})
    with pytest.raises(ValueError, match="unknown run role 'tuning'"):
        write_run(tmp_path, "tuning")


def test_table1_gives_each_dev_chosen_lm_weight_beside_the_fixed_weight_wer(exp):
    scores_path = exp / "small_b" / "decode_test" / "scores.json"
    scores = json.loads(scores_path.read_text())
    scores["lm_tuning"] = {"chosen": {"lm_weight": 12.0, "word_ins_penalty": 0.5},
                           "chosen_on": "data/dev", "fixed": {"lm_weight": 10.0,
                                                              "word_ins_penalty": 0.0},
                           "wer_fixed": 11.0, "grid": None}
    scores_path.write_text(json.dumps(scores))
    out = make_report(exp, "toy", "test", recipe_dir=exp.parent)
    md = out["markdown"]
    assert ("| system | WER % | errors | frame acc % | params | FLOPs/frame | decode RTFx "
            "| train s | kept | LM weight, penalty | WER % at weight 10 |") in md
    assert "| small_b | 10.00 | 1 / 10 (0 ins, 0 del, 1 sub) | 65.00 |" in md
    assert md.split("| small_b |")[1].split("\n")[0].endswith("| 0.50 | 12, 0.5 | 11.00 |")
    assert md.split("| small_a |")[1].split("\n")[0].endswith("| - | - | - |")
    assert "the lowest WER on data/dev" in md
    assert out["results"]["systems"]["small_b"]["lm_tuning"]["chosen"]["lm_weight"] == 12.0
    assert out["results"]["systems"]["small_a"]["lm_tuning"] is None


def test_table1_gives_training_time_from_epochs_and_gmm_logs(exp):
    (exp / "small_b" / "history.json").write_text(json.dumps(
        [{"epoch": 1, "seconds": 1000.5, "members": []}, {"epoch": 2, "seconds": 234.0,
                                                          "members": []}]))
    (exp / "teachers").mkdir()
    (exp / "teachers" / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 77.0}]))
    (exp / "mono" / "log").mkdir()
    (exp / "mono" / "log" / "train-mono.log").write_text(
        "x INFO [asr_kd] asr-kd train-mono finished in 129.4s\n"
        "x INFO [asr_kd] asr-kd train-mono finished in 10.0s\n")  # the model of a --force rerun
    out = make_report(exp, "toy", "test", recipe_dir=exp.parent)
    rows = {ln.split(" | ")[0][2:]: ln.split(" | ") for ln in out["markdown"].splitlines()
            if ln.startswith("| ") and " / 10 " in ln}
    assert rows["small_b"][7] == "1,234" and rows["mono"][7] == "10"
    assert rows["ensemble"][7] == "77" and rows["teacher_1"][7] == "-"
    assert rows["small_a"][7] == "-"  # epochs without seconds
    assert "train_seconds" not in out["results"]["systems"]["small_b"]  # no timings there
