"""local/fsdd.py on the real Free Spoken Digit Dataset; download over local HTTP."""

from __future__ import annotations

import functools
import http.server
import math
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from asr_kd.data import load_data_dir
from asr_kd.lang import prepare_lang
from asr_kd.utils.archive import sha256sum
from asr_kd.utils.fst import to_arrays
from local import fsdd
from tests.conftest import REPO, corpus

DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
SPEAKERS = {"jackson", "nicolas", "theo", "yweweler"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = tmp_path_factory.mktemp("fsdd") / "data"
    return corpus("fsdd"), data, fsdd.prepare_fsdd(corpus("fsdd"), data, split="takes")


def test_takes_split(prepared):
    src, data, paths = prepared
    train, test = load_data_dir(paths["train"]), load_data_dir(paths["test"])
    assert len(train.utts) == 1800 and len(test.utts) == 200
    assert set(train.spk2utt) == set(test.spk2utt) == SPEAKERS
    for d, takes in ((train, range(5, 50)), (test, range(5))):
        for utt in d.utts:
            spk, digit, take = utt.split("_")
            assert d.utt2spk[utt] == spk and int(take) in takes
            assert d.text[utt] == [DIGITS[int(digit)]]
            assert d.wav[utt] == str(src.resolve() / "recordings" / f"{digit}_{spk}_{take}.wav")
    assert test.text["theo_7_3"] == ["SEVEN"]
    assert sorted(test.utts) == test.utts  # keys sorted (Kaldi)

    dct = paths["dict"]
    lex = (dct / "lexicon.txt").read_text().splitlines()
    assert lex[0] == "<SIL> SIL" and len(lex) == 12
    assert {"ZERO Z IH R OW", "ZERO Z IY R OW", "SEVEN S EH V AH N", "ONE W AH N",
            "SIX S IH K S"} <= set(lex)
    phones = (dct / "nonsilence_phones.txt").read_text().split()
    assert len(phones) == 19 and "SIL" not in phones
    assert not any(c.isdigit() for c in "".join(phones))  # stress marks stripped
    assert (dct / "silence_phones.txt").read_text() == "SIL\n"
    assert (dct / "optional_silence.txt").read_text() == "SIL\n"
    for d in ("train", "test", "local", "local/dict"):
        assert (data / d / ".done").exists()


def test_both_split_default(tmp_path):
    """The default: theo unseen (all 500 takes in test_unseen); the other three speakers' takes
    0-4 test, 5-49 train."""
    src, data = corpus("fsdd"), tmp_path / "data"
    paths = fsdd.prepare_fsdd(src, data)
    sets = {k: load_data_dir(paths[k]) for k in ("train", "test", "test_unseen")}
    assert {k: len(d.utts) for k, d in sets.items()} == {"train": 1350, "test": 150,
                                                         "test_unseen": 500}
    seen = SPEAKERS - {"theo"}
    assert set(sets["train"].spk2utt) == set(sets["test"].spk2utt) == seen
    assert set(sets["test_unseen"].spk2utt) == {"theo"}
    assert not set(sets["test_unseen"].spk2utt) & set(sets["train"].spk2utt)
    for k, takes in (("train", range(5, 50)), ("test", range(5)), ("test_unseen", range(50))):
        assert {int(u.split("_")[2]) for u in sets[k].utts} == set(takes)
    utts = [u for d in sets.values() for u in d.utts]
    wavs = [w for d in sets.values() for w in d.wav.values()]
    assert len(set(utts)) == len(utts) == 2000 and len(set(wavs)) == 2000  # no utterance twice
    assert sets["test_unseen"].text["theo_7_33"] == ["SEVEN"]
    assert (data / "local" / "fsdd_options").read_text() == "split=both test_speaker=theo\n"
    for d in ("train", "test", "test_unseen", "local", "local/dict"):
        assert (data / d / ".done").exists()

    # Another test speaker is another split: redone.
    paths = fsdd.prepare_fsdd(src, data, test_speaker="nicolas")
    assert set(load_data_dir(paths["test_unseen"]).spk2utt) == {"nicolas"}
    assert "theo" in load_data_dir(paths["train"]).spk2utt


def test_grammar_accepts_exactly_one_digit(prepared, tmp_path):
    _, _, paths = prepared
    lang = prepare_lang(paths["dict"], tmp_path / "lang", arpa=str(paths["lm"]))
    g, id2word = to_arrays(lang.G()), lang.id2word
    found, stack = [], [(g.start, (), 0.0)]
    while stack:  # every path cheaper than 100 nats; backoff arcs cost 99 ln 10 = 228
        s, words, cost = stack.pop()
        if math.isfinite(g.final[s]) and cost + g.final[s] < 100:
            found.append((words, cost + g.final[s]))
        for k in range(g.num_arcs):
            if g.src[k] == s and cost + g.weight[k] < 100:
                w = id2word[int(g.olabel[k])]
                stack.append((int(g.dst[k]), words + ((w,) if w not in ("<eps>", "#0") else ()),
                              cost + float(g.weight[k])))
    assert sorted(w for w, _ in found) == sorted((d,) for d in DIGITS)
    assert all(c == pytest.approx(math.log(10), abs=1e-4) for _, c in found)


def test_speaker_split_rerun_and_errors(tmp_path):
    src, data = corpus("fsdd"), tmp_path / "data"
    paths = fsdd.prepare_fsdd(src, data, split="speaker", test_speaker="nicolas")
    train, test = load_data_dir(paths["train"]), load_data_dir(paths["test"])
    assert len(train.utts) == 1500 and len(test.utts) == 500
    assert set(test.spk2utt) == {"nicolas"} and set(train.spk2utt) == SPEAKERS - {"nicolas"}
    assert all(u.startswith("nicolas_") for u in test.utts)

    # Done: a rerun with the same options leaves outputs alone; other options redo the work.
    paths["lm"].write_text("stale\n")
    fsdd.prepare_fsdd(src, data, split="speaker", test_speaker="nicolas")
    assert paths["lm"].read_text() == "stale\n"
    fsdd.prepare_fsdd(src, data)
    assert paths["lm"].read_text() == fsdd.grammar_arpa()
    assert len(load_data_dir(paths["test"]).utts) == 150
    assert len(load_data_dir(data / "test_unseen").utts) == 500
    # A split without test_unseen removes the one `both` left: it would share theo with train.
    fsdd.prepare_fsdd(src, data, split="takes")
    assert len(load_data_dir(paths["test"]).utts) == 200
    assert not (data / "test_unseen").exists()

    for split in ("speaker", "both"):
        with pytest.raises(ValueError) as e:
            fsdd.prepare_fsdd(src, data, split=split, test_speaker="george")
        assert str(e.value) == (f"{src / 'recordings'}: no speaker 'george' "
                                f"(speakers: jackson, nicolas, theo, yweweler)")
        assert not (data / "local" / ".done").exists()  # a failed run leaves no stale marker
    with pytest.raises(ValueError, match="unknown split 'digits' \\(expected both, takes, "
                                         "speaker\\)"):
        fsdd.prepare_fsdd(src, data, split="digits")

    cmu = tmp_path / "cmudict.dict"
    cmu.write_text("".join(ln + "\n" for ln in (corpus("cmudict") / "cmudict.dict")
                           .read_text().splitlines() if not ln.startswith(("seven", "nine "))))
    with pytest.raises(ValueError) as e:
        fsdd.prepare_fsdd(src, data, cmudict=cmu)
    assert str(e.value) == f"{cmu}: no pronunciation for ['SEVEN', 'NINE']"


def test_cli_runs_as_module(tmp_path):
    """As the recipe runs it: `python -m local.fsdd` elsewhere, the checkout on PYTHONPATH."""
    script, env = [sys.executable, "-m", "local.fsdd"], dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([*script, "download", "--dest", "corpus"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(corpus("fsdd").resolve())
    assert not (tmp_path / "corpus").exists()
    subprocess.run([*script, "prepare", "--corpus-dir", out.stdout.strip(),
                    "--split", "speaker", "--test-speaker", "theo"], cwd=tmp_path, env=env,
                   check=True, capture_output=True)
    assert set(load_data_dir(tmp_path / "data" / "test").spk2utt) == {"theo"}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/srv over HTTP on 127.0.0.1, bypassing any proxy."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_logs_or_checks_sha256(server, tmp_path, capsys):
    root, base = server
    archive = root / "master.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:  # laid out as GitHub's branch archive
        for name in ("0_theo_0.wav", "7_jackson_32.wav"):
            tf.add(corpus("fsdd") / "recordings" / name,
                   arcname=f"free-spoken-digit-dataset-master/recordings/{name}")
    url, sha, absent = f"{base}/master.tar.gz", sha256sum(archive), tmp_path / "absent"

    bad = "0" * 64
    assert fsdd.main(["download", "--corpus-dir", str(absent), "--dest", str(tmp_path / "x"),
                      "--url", url, "--sha256", bad, "--no-progress"]) == 1
    assert f"error: {url}: checksum mismatch: expected {bad}, got {sha}\n" in \
        capsys.readouterr().err
    assert not (tmp_path / "x").exists()

    got = fsdd.download_fsdd(tmp_path / "dl", corpus_dir=absent, url=url, progress=False)
    assert got == (tmp_path / "dl" / "free-spoken-digit-dataset-master").resolve()
    assert sorted(p.name for p in (got / "recordings").iterdir()) == ["0_theo_0.wav",
                                                                      "7_jackson_32.wav"]
    assert f"sha256 of fsdd.tar.gz: {sha} (unverified" in capsys.readouterr().err
    archive.unlink()  # complete: no network needed the second time
    assert fsdd.download_fsdd(tmp_path / "dl", corpus_dir=absent, url=url) == got
