"""The mini_librispeech and librispeech recipes end to end (CI config, stages 0-10) against
OpenSLR served from 127.0.0.1: archives in LibriSpeech's own layout made of real utterances
from the shared hour, pinned with --checksums; then data dirs, lang, features, a monophone GMM,
a tiny ensemble, both students, decoding and the report.

Every stage is a process that spends about 2 s importing torch, so to keep each test near 40 s
on one core both take the monophone targets (`--gmm mono`, 5 processes fewer): the triphone
stages are the same code the AN4 and FSDD recipe tests run."""

from __future__ import annotations

import gzip
import json
import re
import sys

from asr_kd.data import load_data_dir
from tests.conftest import copy_recipe, run_recipe
from tests.test_local_librispeech import (
    TEST_SPEAKERS,
    TRAIN_SPEAKERS,
    serve_lm,
    serve_parts,
    utterances,
    write_checksums,
)

SYSTEMS = {"mono", "teacher_1", "teacher_2", "ensemble", "student_hard", "student_kd"}


def run_ok(rdir, *args):
    proc = run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--stop-stage", "10",
                      "--gmm", "mono", *args, timeout=600)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
    assert proc.returncode == 0, f"{rdir.name} recipe failed"
    return proc


def check_results(rdir, test_set: str, test_utts: dict, systems: set[str]) -> dict:
    """Every system decoded every test utterance; its wer file is Kaldi's and agrees with
    results.json."""
    results = json.loads((rdir / "exp/results.json").read_text())
    assert results["test_set"] == test_set and set(results["systems"]) == systems
    words = sum(len(ws) for _, ws in test_utts.values())
    for name, s in results["systems"].items():
        assert len((rdir / s["hyp"]).read_text().splitlines()) == len(test_utts)
        wer = (rdir / "exp" / name / f"decode_{test_set}" / "wer").read_text().splitlines()[0]
        m = re.fullmatch(r"%WER (\d+\.\d\d) \[ (\d+) / (\d+), \d+ ins, \d+ del, \d+ sub \]", wer)
        assert m and int(m[3]) == words, wer
        assert float(m[1]) == s["wer"] and wer == s["kaldi_line"]
    assert "| ensemble |" in (rdir / "exp/RESULTS.md").read_text()
    return results


def test_mini_librispeech(http_server, tmp_path):
    root, base = http_server
    train, test = utterances(TRAIN_SPEAKERS), utterances(TEST_SPEAKERS)
    sums = serve_parts(root, {"train-clean-5": train, "dev-clean-2": test})
    rdir = copy_recipe("mini_librispeech", tmp_path)
    pins = write_checksums(tmp_path / "sha256", sums)
    run_ok(rdir, "--base-url", base, "--checksums", str(pins))

    corpus = rdir / "corpus" / "LibriSpeech"
    assert (rdir / "corpus.path").read_text().strip() == str(corpus.resolve())
    assert sorted(p.name for p in (rdir / "corpus").iterdir()) == [
        ".dev-clean-2.completed", ".train-clean-5.completed", "LibriSpeech"]
    tr, dv = load_data_dir(rdir / "data/train"), load_data_dir(rdir / "data/dev_clean_2")
    assert tr.utts == sorted(train) and dv.utts == sorted(test)
    assert all(tr.wav[u].startswith(str(corpus / "train-clean-5")) for u in tr.utts)
    assert (rdir / "data/train/feats.scp").is_file()
    check_results(rdir, "dev_clean_2", test, SYSTEMS)


def test_librispeech_openslr_lm(http_server, tmp_path):
    """train-clean-100 / test-clean with OpenSLR 11's lexicon and ARPA (stand-ins: CMUdict's
    stressed pronunciations of all words but one, a trigram on the training text)."""
    root, base = http_server
    train, test = utterances(TRAIN_SPEAKERS), utterances(TEST_SPEAKERS)
    sums = serve_parts(root, {"train-clean-100": train, "test-clean": test})
    drop = "THE"  # a word the lexicon lacks: <UNK> everywhere
    sums |= serve_lm(root, [ws for _, ws in train.values()], drop)
    rdir = copy_recipe("librispeech", tmp_path)
    pins = write_checksums(tmp_path / "sha256", sums)
    run_ok(rdir, "--base-url", base, "--checksums", str(pins))

    lm_dir = rdir / "corpus" / "lm"
    assert (rdir / "lm.path").read_text().strip() == str(lm_dir.resolve())
    with gzip.open(lm_dir / "3-gram.pruned.3e-7.arpa.gz", "rt") as f:  # words lower-cased
        assert (rdir / "data/local/lm.arpa").read_text() == f.read().lower()
    tr = load_data_dir(rdir / "data/train")
    assert tr.utts == sorted(train)
    have = {ln.split()[0] for ln in (lm_dir / "librispeech-lexicon.txt").read_text().splitlines()}
    assert drop not in have
    assert sum(ws.count("<UNK>") for ws in tr.text.values()) == \
        sum(w not in have for _, ws in train.values() for w in ws) > 0
    lexicon = (rdir / "data/local/dict/lexicon.txt").read_text()
    assert not re.search(r"\d", lexicon)  # stress marks dropped
    check_results(rdir, "test_clean", test, SYSTEMS)
