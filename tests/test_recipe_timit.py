"""The timit recipe end to end (CI config, stages 0-10) on a TIMIT copy made of real AN4
utterances (tests/test_local_timit.py), fetched as a tarball from the user's "mirror" on
127.0.0.1 with --url/--sha256: data dirs, the 48-phone lang without optional silence, features,
a monophone GMM, a tiny ensemble, both students, decoding scored on 39 phones (both decoders
agreeing on the phone-loop graph) and the report.
A wrong sha256 stops stage 0 with the checksum error and leaves no corpus behind.

As the LibriSpeech recipe tests do, this one takes the monophone targets (`--gmm mono`, five
processes fewer): the triphone stages are the code the AN4 and FSDD recipe tests run."""

from __future__ import annotations

import json
import re
import sys

from asr_kd.data import load_data_dir
from asr_kd.score.wer import apply_score_map, compute_wer, read_score_map
from asr_kd.utils.archive import sha256sum
from tests.conftest import copy_recipe, decoders_agree, run_recipe
from tests.test_local_timit import CORE, PER_SPEAKER, archive_of, make_timit

SYSTEMS = {"mono", "teacher_1", "teacher_2", "ensemble", "student_hard", "student_kd"}


def run(rdir, *args):
    return run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--gmm", "mono", *args,
                      timeout=600)


def test_timit_recipe_scores_39_phones(http_server, tmp_path):
    srv, base = http_server
    make_timit(tmp_path / "copy" / "TIMIT")
    sha = sha256sum(archive_of(tmp_path / "copy" / "TIMIT", srv / "mirror" / "timit.tar.gz"))
    rdir = copy_recipe("timit", tmp_path)
    proc = run(rdir, "--stop-stage", "10", "--url", f"{base}/mirror/timit.tar.gz",
               "--sha256", sha)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
    assert proc.returncode == 0, "timit recipe failed"

    assert (rdir / "corpus.path").read_text().strip() == str((rdir / "corpus/TIMIT").resolve())
    assert sorted(p.name for p in (rdir / "corpus").iterdir()) == [".completed", "TIMIT"]
    test = load_data_dir(rdir / "data/test")
    assert set(test.utt2spk.values()) == CORE and len(test.utts) == PER_SPEAKER * len(CORE)
    # the map travels dict -> lang -> graph; L has no optional silence (sil is a word)
    score_map = (rdir / "data/local/dict/score_map.txt").read_text()
    assert (rdir / "data/lang/score_map.txt").read_text() == score_map
    assert (rdir / "exp/graph/score_map.txt").read_text() == score_map
    folds = read_score_map(rdir / "exp/graph/score_map.txt")
    phones39 = set(folds.values())
    assert len(phones39) == 39

    results = json.loads((rdir / "exp/results.json").read_text())
    assert results["corpus"] == "timit" and results["test_set"] == "test"
    assert set(results["systems"]) == SYSTEMS
    refs = apply_score_map(test.text, folds)
    assert {p for ws in test.text.values() for p in ws} - phones39  # 48-phone references
    for name, s in results["systems"].items():
        assert s["score_map"] == "exp/graph/score_map.txt"
        decode = rdir / "exp" / name / "decode_test"
        hyps = {ln.split()[0]: ln.split()[1:] for ln in (decode / "hyp.txt").read_text()
                .splitlines()}
        assert set(hyps) == set(test.utts)
        # what was scored: both sides on the 39 phones, and the wer file is their PER
        scored = {f: {ln.split()[0]: ln.split()[1:] for ln in (decode / f).read_text()
                      .splitlines()} for f in ("score_ref.txt", "score_hyp.txt")}
        assert scored["score_ref.txt"] == refs
        assert scored["score_hyp.txt"] == apply_score_map(hyps, folds)
        assert {p for ws in scored["score_hyp.txt"].values() for p in ws} <= phones39
        wer = (decode / "wer").read_text().splitlines()[0]
        per = compute_wer(refs, apply_score_map(hyps, folds))
        assert wer == per.kaldi_line() == s["kaldi_line"], name
        assert per.errors <= compute_wer(test.text, hyps).errors  # folding only merges
        assert re.fullmatch(r"%WER \d+\.\d\d \[ \d+ / \d+, \d+ ins, \d+ del, \d+ sub \]", wer)
    md = (rdir / "exp/RESULTS.md").read_text()
    assert "| ensemble |" in md and "`exp/graph/score_map.txt`" in md
    # the phone-loop graph without optional silence: both decoders find the same paths
    assert decoders_agree(rdir, "test", "mono") == len(test.utts)


def test_timit_recipe_wrong_sha256_stops_stage_0(http_server, tmp_path):
    srv, base = http_server
    make_timit(tmp_path / "copy" / "TIMIT")
    sha = sha256sum(archive_of(tmp_path / "copy" / "TIMIT", srv / "timit.tar.gz"))
    rdir = copy_recipe("timit", tmp_path)
    wrong = "f" * 64
    proc = run(rdir, "--stop-stage", "1", "--url", f"{base}/timit.tar.gz", "--sha256", wrong)
    assert proc.returncode != 0
    assert (f"error: {base}/timit.tar.gz: checksum mismatch: expected {wrong}, got {sha}"
            in proc.stderr)
    assert "Stage 1" not in proc.stdout
    assert not (rdir / "corpus").exists() and not (rdir / "corpus.path").exists()
    assert not (rdir / "data").exists()
