"""The FSDD recipe end to end on real audio (CI config): Table 1, the sweeps, Table 5, the
specialists, and `asr-kd evaluate` on a user's data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.score.wer import compute_wer
from tests.conftest import REPO, copy_recipe, corpus, decoders_agree, run_recipe

SYSTEMS = {"mono", "tri1", "teacher_1", "teacher_2", "teacher_3", "ensemble", "student_hard",
           "student_kd", "student_kdt", "student_tdnn_hard", "student_tdnn_kd",
           "student_tdnn_kdt", "specialists", "student_spec"}
TEST_UTTS = {"test": 150, "test_unseen": 500}  # takes 0-4 of three voices; all of theo
USER_MODEL = REPO / "examples" / "user_model"

# The CI schedule (conf_ci), with an ensemble of mixed architectures: the paper's MLP, a
# built-in TDNN, and a user's model from a file outside the package (examples/user_model, on
# PYTHONPATH); and a TDNN student beside the MLP one. A recipe config, as a user writes it.
MIXED_TEACHERS = """
model:
  - class: mlp
    args: {left_context: 5, right_context: 5, hidden_dim: 256, num_layers: 2}
  - class: tdnn
    args: {hidden_dim: 96, layers: [[5, 1], [3, 1], [3, 3]]}
  - class: "light_conv:LightConvNet"
    args: {channels: 96, num_blocks: 3, kernel_size: 5, dropout: 0.0}
members: 3
epochs: 4
batch_size: 128
chunk_size: 16
lr: 0.001
valid_fraction: 0.1
seed: 0
"""
TDNN_STUDENT = """
model:
  class: tdnn
  args: {hidden_dim: 64, layers: [[5, 1], [3, 1], [3, 3]]}
epochs: 4
batch_size: 128
chunk_size: 16
lr: 0.001
valid_fraction: 0.1
seed: 100
distill: {alpha: 0.5, temperature: 2.0, mode: kl, combine: arithmetic, source: topk, top_k: 20}
"""


@pytest.fixture(scope="session")
def fsdd_run(tmp_path_factory):
    corpus("fsdd")
    rdir = copy_recipe("fsdd", tmp_path_factory.mktemp("fsdd"))
    (rdir / "conf_ci" / "teachers.yaml").write_text(MIXED_TEACHERS)
    (rdir / "conf_ci" / "student_tdnn.yaml").write_text(TDNN_STUDENT)
    # A two-point temperature sweep (the full one is T = 1, 2, 5, 10).
    proc = run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--temperatures", "1 10",
                      "--alphas", "", "--transfer-weights", "0.25",
                      "--students", "student student_tdnn", "--seeds", "101",
                      timeout=1800, pythonpath=(USER_MODEL,))
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
    assert (systems["student_tdnn_kd"]["params"] == systems["student_tdnn_hard"]["params"]
            < teachers[1]["params"])
    # Averaging helps: above the members' mean. With mixed members the strongest one (here
    # the TDNN) may be as good as the ensemble (CI run on monophone targets: ensemble 72.52,
    # TDNN 72.50, mean 69.67; a 2026-12 run on tri1 targets: 70.81, 68.73, 67.18). The bounds
    # leave room for seed noise below those runs: the ensemble at least 1.0 above the mean
    # (2.85 and 3.64 there), the best member at most 0.5 above the ensemble. (The full mixed
    # config, five members, puts the ensemble 1.3 points above its best: docs/results/fsdd.md.)
    accs = [t["frame_acc"] for t in teachers]
    assert ens["frame_acc"] > sum(accs) / len(accs) + 1.0
    assert ens["frame_acc"] > max(accs) - 0.5
    # The members are the three architectures asked for, the user's one included, and each
    # was trained, saved, reloaded and decoded.
    ckpt = torch.load(rdir / "exp/ensemble/final.pt", weights_only=True)
    assert [m["spec"]["class"] for m in ckpt["members"]] == [
        "mlp", "tdnn", "light_conv:LightConvNet"]
    user = ckpt["members"][2]
    sys.path.insert(0, str(USER_MODEL))
    try:
        from light_conv import LightConvNet
    finally:
        sys.path.remove(str(USER_MODEL))
    net = LightConvNet(user["input_dim"], user["num_pdfs"], **user["spec"]["args"])
    assert systems["teacher_3"]["params"] == sum(p.numel() for p in net.parameters())
    # student_kd beating student_hard is the project's goal, not yet a reliable outcome on FSDD
    # (docs/results/fsdd.md), so it is reported, not asserted.
    for student in ("student", "student_tdnn"):
        kd, hard = systems[f"{student}_kd"]["frame_acc"], systems[f"{student}_hard"]["frame_acc"]
        assert results["kept_by_system"][f"{student}_kd"] == pytest.approx(
            (kd - hard) / (ens["frame_acc"] - hard), abs=1e-3)
    assert results["kept"] == results["kept_by_system"]["student_kd"]
    # The same figure by hand from each decode's own scores.json, not through the report's
    # systems table: (kd - hard) / (ensemble - hard), to 4 places.
    acc = {name: json.loads((rdir / f"exp/{name}/decode_test/scores.json").read_text())[
        "frame_acc"] for name in ("ensemble", "student_hard", "student_kd", "student_tdnn_hard",
                                  "student_tdnn_kd")}
    for student in ("student", "student_tdnn"):
        kd, hard = acc[f"{student}_kd"], acc[f"{student}_hard"]
        assert acc["ensemble"] != hard
        assert results["kept_by_system"][f"{student}_kd"] == round(
            (kd - hard) / (acc["ensemble"] - hard), 4), student
    for name, s in systems.items():
        # A regression bound, not a target: 8% is 12 of the 150 one-digit test utterances.
        # CI runs had at most 3.0% (monophone targets) and 3.5% (tri1 targets, student_hard)
        # on the old 200-utterance test set, and 5.33% (student_spec, 8 errors) on the 150 of
        # the three training voices; the full configs score 0.00-1.00% (docs/results/fsdd.md).
        assert s["wer"] <= 8.0, (name, s["kaldi_line"])
        assert len((rdir / s["hyp"]).read_text().splitlines()) == TEST_UTTS["test"]
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "kept = (student_kd - student_hard) / (ensemble - student_hard)" in md
    assert "kept = (student_tdnn_kd - student_tdnn_hard) / (ensemble - student_tdnn_hard)" in md


def test_sweeps_and_table5(fsdd_run):
    rdir, results = fsdd_run
    sweep = {(r["variant"], r["temperature"], r["alpha"], r["transfer_weight"])
             for r in results["sweep"]}
    assert sweep == {("kd", 1, 0.5, None), ("kd", 10, 0.5, None), ("kdt", 2, 0.5, 0.25)}
    assert all(0 < r["valid_acc"] <= 100 for r in results["sweep"])
    share = {r["targets"]: r for r in results["share"]}
    assert set(share) == {"hard", "soft"}
    for r in share.values():
        assert r["percent"] == 3 and r["utts"] == round(0.03 * (1350 - 135))
        assert len(r["valid_acc_by_epoch"]) == len(r["train_acc_by_epoch"]) > 1
    # Soft targets as a regulariser (the paper's section 6): at 3% of the data they beat hard
    # targets by several points (CI config: 52.6% vs 43.1% on monophone targets, 47.8% vs
    # 40.6% on tri1 targets; full config: 58.5% vs 45.9%, docs/results/fsdd.md; the paper:
    # 57.0% vs 44.5%). The bound, 3 points, is the direction the paper reports with under half
    # the smallest of these gaps (7.1).
    assert share["soft"]["test_frame_acc"] > share["hard"]["test_frame_acc"] + 3
    for plot in ("results", "temperature", "share"):
        assert (rdir / f"exp/plots/{plot}.png").stat().st_size > 1000
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "## Sweep of T, alpha and the transfer weight" in md and "## Table 5" in md
    assert "Best on validation (student_kd): " in md


def test_specialists(fsdd_run):
    """Stage 13: teacher_1 as the generalist, CI's 4 specialists of 8 pdfs, and a student
    distilled from their combination."""
    rdir, results = fsdd_run
    systems, spec = results["systems"], results["specialists"]
    assert spec["generalist"] == "teacher_1" and spec["clusters"] == 4
    gen, comb = systems["teacher_1"], systems["specialists"]
    ckpt = torch.load(rdir / "exp/specialists/final.pt", weights_only=True)
    assert [len(c) for c in ckpt["clusters"]] == [8] * 4
    assert [s["num_pdfs"] for s in ckpt["specialists"]] == [9] * 4  # 8 pdfs + the dustbin
    assert comb["params"] > 4 * gen["params"]
    assert systems["student_spec"]["params"] == systems["student_kd"]["params"]
    # The coverage table covers every test frame, and its generalist column is teacher_1's
    # own decode (same model, same alignments).
    rows = spec["coverage"]
    frames = sum(r["frames"] for r in rows)
    correct = sum(r["frames"] * r["generalist_acc"] / 100 for r in rows)
    assert frames == json.loads((rdir / "exp/teacher_1/decode_test/scores.json").read_text())[
        "frames"]
    assert 100 * correct / frames == pytest.approx(gen["frame_acc"], abs=0.01)
    combined = sum(r["frames"] * r["combined_acc"] / 100 for r in rows)
    assert 100 * combined / frames == pytest.approx(comb["frame_acc"], abs=0.01)
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "## Specialists (paper section 5)" in md and "| specialists covering |" in md


def evaluate_student_kd(rdir, user, cwd) -> subprocess.CompletedProcess:
    """`asr-kd evaluate RECIPE USER_DIR --system student_kd`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "asr_kd", "evaluate", str(rdir), str(user),
                           "--system", "student_kd", "--device", "cpu"], cwd=cwd,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_evaluate_on_a_users_data_dir(fsdd_run, tmp_path):
    """A data dir made of one test speaker's utterances (so its per-speaker CMVN is the same as
    in the full test set) gets exactly the hypotheses the recipe's decode gave them."""
    rdir, results = fsdd_run
    test = load_data_dir(rdir / "data/test")
    utts = [u for u in test.utts if test.utt2spk[u] == "jackson"]
    user = tmp_path / "my_recordings"
    write_data_dir(user, {u: test.wav[u] for u in utts}, {u: test.text[u] for u in utts},
                   {u: "jackson" for u in utts})
    proc = evaluate_student_kd(rdir, user, tmp_path)
    assert proc.returncode == 0, proc.stderr
    recipe_hyps = {line.split()[0]: line.split()[1:] for line in
                   (rdir / results["systems"]["student_kd"]["hyp"]).read_text().splitlines()}
    expected = compute_wer({u: test.text[u] for u in utts}, {u: recipe_hyps[u] for u in utts})
    assert f"student_kd: {expected.kaldi_line()}" in proc.stdout
    out = rdir / "exp/student_kd/decode_eval_my_recordings/hyp.txt"
    assert out.read_text().splitlines() == [" ".join([u] + recipe_hyps[u]) for u in utts]


def test_evaluate_on_mp3_recordings(fsdd_run, tmp_path):
    """The same speaker's recordings as MP3 (as LibriSpeech's dev_clean copy comes): `evaluate`
    reads them through wav.scp unchanged and scores every utterance, close to the WAV's WER
    (MP3 is lossy: a few words may change)."""
    import soundfile as sf

    rdir, results = fsdd_run
    test = load_data_dir(rdir / "data/test")
    utts = [u for u in test.utts if test.utt2spk[u] == "jackson"]
    mp3 = {}
    for u in utts:
        x, sr = sf.read(test.wav[u], dtype="float32")
        mp3[u] = str(tmp_path / f"{u}.mp3")
        sf.write(mp3[u], x, sr, format="MP3")
    user = tmp_path / "jackson_mp3"
    write_data_dir(user, mp3, {u: test.text[u] for u in utts}, {u: "jackson" for u in utts})
    proc = evaluate_student_kd(rdir, user, tmp_path)
    assert proc.returncode == 0, proc.stderr
    hyps = {ln.split()[0]: ln.split()[1:] for ln in
            (rdir / "exp/student_kd/decode_eval_jackson_mp3/hyp.txt").read_text().splitlines()}
    assert sorted(hyps) == sorted(utts)
    recipe_hyps = {line.split()[0]: line.split()[1:] for line in
                   (rdir / results["systems"]["student_kd"]["hyp"]).read_text().splitlines()}
    refs = {u: test.text[u] for u in utts}
    wav_wer = compute_wer(refs, {u: recipe_hyps[u] for u in utts})
    mp3_wer = compute_wer(refs, hyps)
    assert f"student_kd: {mp3_wer.kaldi_line()}" in proc.stdout
    assert mp3_wer.errors <= wav_wer.errors + 2, (mp3_wer.kaldi_line(), wav_wer.kaldi_line())


@pytest.mark.parametrize("system", ["ensemble", "student_tdnn_kd"])
def test_torch_decoder_finds_the_reference_paths(fsdd_run, system, monkeypatch):
    rdir, _ = fsdd_run
    monkeypatch.syspath_prepend(str(USER_MODEL))  # the ensemble holds the user's model
    assert decoders_agree(rdir, "test", system) == TEST_UTTS["test"]


def test_kept_over_seeds(fsdd_run):
    """Stage 14: the student pair again with seed 101, beside stage 7's (seed 100)."""
    rdir, results = fsdd_run
    seeds, ens = results["kept_seeds"]["student_kd"], results["systems"]["ensemble"]["frame_acc"]
    assert seeds["seeds"] == [100, 101] and seeds["vs"] == "student_hard"
    assert (seeds["hard_acc"][0], seeds["acc"][0]) == (
        results["systems"]["student_hard"]["frame_acc"],
        results["systems"]["student_kd"]["frame_acc"])
    assert seeds["kept"][0] == results["kept"]
    hard, kd = (json.loads((rdir / f"exp/seeds/student_{k}_s101/decode_test/scores.json")
                           .read_text()) for k in ("hard", "kd"))
    assert (seeds["hard_acc"][1], seeds["acc"][1]) == (hard["frame_acc"], kd["frame_acc"])
    assert (seeds["hard_wer"][1], seeds["wer"][1]) == (hard["wer"], kd["wer"])
    ens_file = json.loads((rdir / "exp/ensemble/decode_test/scores.json").read_text())
    assert seeds["kept"][1] == round((kd["frame_acc"] - hard["frame_acc"]) /
                                     (ens_file["frame_acc"] - hard["frame_acc"]), 4)
    assert hard["params"] == kd["params"] == results["systems"]["student_hard"]["params"]
    # Another seed: another validation split, other weights. (Test accuracies may still tie:
    # in one CI run both hard-target students scored 56.8077%.)
    for kind in ("hard", "kd"):
        curves = [[e["members"][0]["valid_acc"] for e in json.loads((rdir / d / "history.json")
                                                                    .read_text())]
                  for d in (f"exp/student_{kind}", f"exp/seeds/student_{kind}_s101")]
        assert curves[0] != curves[1]
    kept = [(k - h) / (ens - h) for k, h in zip(seeds["acc"], seeds["hard_acc"])]
    assert seeds["kept_mean"] == pytest.approx(sum(kept) / 2, abs=1e-3)
    assert seeds["kept_sd"] == pytest.approx(abs(kept[0] - kept[1]) / 2 ** 0.5, abs=1e-3)
    hard, kd = (sum(seeds[k]) / 2 for k in ("hard_acc", "acc"))
    assert seeds["gain"] == pytest.approx(ens - hard, abs=1e-3)
    assert seeds["claimed"] == (ens - hard >= 1.0)
    assert seeds["kept_of_means"] == pytest.approx((kd - hard) / (ens - hard), abs=1e-3)
    # The paired bootstrap over the 150 test utterances, both seeds pooled.
    sig = results["significance"]["student_kd"]
    assert sig["seeds"] == [100, 101] and sig["utterances"] == 150 and sig["resamples"] == 1000
    assert sig["ci95"][0] <= sig["wer_diff"] <= sig["ci95"][1]
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "## kept over seeds, test" in md and "### student_kd against student_hard" in md
    assert f"| 101 | {seeds['hard_acc'][1]:.2f} | {seeds['acc'][1]:.2f} |" in md


def test_unseen_voice_and_transfer_set(fsdd_run):
    """Every system is decoded on both test sets; the _kdt students learned from AN4's audio
    (16 kHz, resampled to FSDD's 8 kHz), which has no transcripts here."""
    rdir, results = fsdd_run
    for name, n in TEST_UTTS.items():
        ts = results["test_sets"][name]
        assert set(ts["systems"]) == SYSTEMS, name
        for s in ts["systems"].values():
            assert len((rdir / s["hyp"]).read_text().splitlines()) == n
    assert not (rdir / "data/transfer_an4/text").exists()
    for student in ("student", "student_tdnn"):
        run = json.loads((rdir / f"exp/{student}_kdt/run.json").read_text())
        assert run["settings"]["variant"] == "kdt"
        assert run["settings"]["transfer"] == ["data/transfer_an4"]
        # AN4's 48.4 minutes at 100 frames per second (10 ms), less the edges of each frame.
        assert 0.79 < run["settings"]["transfer_hours"] < 0.81
    for system in ("student_kdt", "student_tdnn_kdt"):
        assert results["significance"][system]["vs"] == system.replace("kdt", "hard")
        assert results["test_sets"]["test_unseen"]["kept_seeds"][system]["seeds"] == [100, 101]
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "test_unseen" in md


# ---------------------------------------------------------------- export and the runtime

# The runtime in a subprocess with torch hidden (`import torch` fails there): it must not need
# it, and must not have loaded any of it when it is done.
NO_TORCH = """
import sys
sys.modules["torch"] = None
from asr_kd_runtime.cli import main
rc = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m]], "torch"
sys.exit(rc)
"""


def transcribe(*args, cwd=None) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.split("\t")[0]: line.split("\t")[1].split() for line in
            proc.stdout.splitlines()}


def export(rdir, system, out, *flags):
    proc = subprocess.run([sys.executable, "-m", "asr_kd", "export", str(rdir), "--system",
                           system, "--out", str(out), *flags], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")
def fsdd_export(fsdd_run, tmp_path_factory):
    rdir, results = fsdd_run
    out = tmp_path_factory.mktemp("export") / "student_kd"
    return rdir, results, out, export(rdir, "student_kd", out)


def _hyps(rdir, results, system) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in
            (rdir / results["systems"][system]["hyp"]).read_text().splitlines()}


def test_export_then_transcribe_as_decode_does(fsdd_export):
    """A data dir (per-speaker CMVN) transcribed by the runtime, without torch, gets exactly
    the recipe decode's words; a wav.scp alone (global CMVN) gets a WER printed beside it;
    --online gets the words of the offline global-CMVN run on every utterance."""
    rdir, results, out, manifest = fsdd_export
    assert manifest["model"]["streamable"] and manifest["precision"] == "fp32"
    assert manifest["decode"]["acoustic_scale"] == pytest.approx(0.1)
    test = load_data_dir(rdir / "data/test")
    assert transcribe(out, rdir / "data/test") == _hyps(rdir, results, "student_kd")
    glob = transcribe(out, rdir / "data/test/wav.scp")
    refs = {u: test.text[u] for u in test.utts}
    per_spk = compute_wer(refs, _hyps(rdir, results, "student_kd"))
    print(f"student_kd, test: per-speaker CMVN {per_spk.kaldi_line()}; global CMVN "
          f"{compute_wer(refs, glob).kaldi_line()}")
    # Measured: 2.67% per speaker, 9.33% global. FSDD's recordings are half a second of one
    # word, so a speaker's mean says much more about them than the training data's mean does.
    assert compute_wer(refs, glob).wer <= per_spk.wer + 10.0
    assert transcribe(out, rdir / "data/test/wav.scp", "--online", "--chunk", "0.25") == glob


def test_int8_export(fsdd_run, tmp_path):
    """The TDNN student quantized (its convolutions statically, calibrated on training
    features; its output layer dynamically) stays within 1 WER point of float32."""
    rdir, results = fsdd_run
    m = export(rdir, "student_tdnn_kd", tmp_path / "int8", "--int8", "--calibration-utts", "50")
    assert m["precision"] == "int8" and m["quantization"]["static"] == ["Conv"]
    assert m["quantization"]["calibration_utterances"] == 50
    test = load_data_dir(rdir / "data/test")
    refs = {u: test.text[u] for u in test.utts}
    fp32 = compute_wer(refs, _hyps(rdir, results, "student_tdnn_kd"))
    int8 = compute_wer(refs, transcribe(tmp_path / "int8", rdir / "data/test"))
    print(f"student_tdnn_kd, test: fp32 {fp32.kaldi_line()}; int8 {int8.kaldi_line()}")
    assert int8.wer <= fp32.wer + 1.0


def test_transcribe_bad_input(fsdd_export, tmp_path, capsys):
    import shutil

    from asr_kd_runtime.cli import main

    from asr_kd.cli import main as asr_kd_main

    _, _, out, _ = fsdd_export
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("these are not samples\n")

    def error(*args) -> str:
        assert main([str(a) for a in args]) == 1
        return capsys.readouterr().err

    assert f"audio '{tmp_path}/empty.wav': file is empty (0 bytes)" in error(out, tmp_path /
                                                                           "empty.wav")
    assert f"audio '{tmp_path}/notes.wav': cannot read: " in error(out, tmp_path / "notes.wav")
    # `asr-kd transcribe` is the same command
    assert asr_kd_main(["transcribe", str(out), str(tmp_path / "empty.wav")]) == 1
    assert "file is empty (0 bytes)" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "words.txt").write_text("<eps> 0\n")
    assert (f"{broken}/words.txt: sha256 " in (err := error(broken, tmp_path / "notes.wav"))
            and "does not match the manifest's" in err)
    (broken / "HCLG.fst").unlink()
    assert f"{broken}: missing export file HCLG.fst" in error(broken, tmp_path / "notes.wav")
