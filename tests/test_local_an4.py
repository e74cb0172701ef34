"""local/an4.py on the real CMU AN4 corpus, and CMU's archive over local HTTP: a tar.gz in
an4_sphere.tar.gz's layout made of real utterances from the shared copy, their audio as NIST
SPHERE: verified, unpacked, prepared; and a wrong checksum, a truncated archive or a member
escaping the target stops with a clear error and leaves nothing behind."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.data import load_data_dir
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.utils.archive import sha256sum
from local import an4
from tests.conftest import REPO, corpus

# Real utterances (each speaker's shortest) for the archive: two female and two male training
# speakers, one of each among the test speakers.
TRAIN_SPEAKERS, TEST_SPEAKERS, PER_SPEAKER = ("fash", "fbbh", "mblb", "mblw"), ("fcaw", "marh"), 4
ARCHIVE = "databases/an4/an4_sphere.tar.gz"  # where CMU serves it, under the server's root


def utterances(split: str, speakers, n: int = PER_SPEAKER) -> dict[str, tuple[str, list[str]]]:
    """{file id: (transcript line, words)} of the n smallest recordings of each speaker in
    etc/an4_<split>.fileids, in that file's order."""
    etc, wav = corpus("an4") / "etc", corpus("an4") / "wav"
    ids = (etc / f"an4_{split}.fileids").read_text().split()
    lines = (etc / f"an4_{split}.transcription").read_text().splitlines()
    keep = {fid for spk in speakers for fid in sorted(
        (f for f in ids if f.split("/")[1] == spk),
        key=lambda f: (wav / f"{f}.wav").stat().st_size)[:n]}
    return {fid: (line, [w for w in line.rsplit("(", 1)[0].split() if w not in ("<s>", "</s>")])
            for fid, line in zip(ids, lines) if fid in keep}


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_archive(path: Path, train, test, top: str = "an4",
                 extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz laid out as CMU's an4_sphere.tar.gz: an4/{README,LICENSE}, an4/etc/ (the file
    lists and transcripts cut to `train` and `test`), an4/wav/<file id>.sph (the shared copy's
    samples as 16-bit big-endian NIST SPHERE)."""
    src = corpus("an4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name in ("README", "LICENSE", "etc/an4.dic", "etc/an4.phone", "etc/an4.filler",
                     "etc/an4.ug.lm"):
            tf.add(src / name, arcname=f"{top}/{name}")
        for split, utts in (("train", train), ("test", test)):
            _add(tf, f"{top}/etc/an4_{split}.fileids", "".join(f"{f}\n" for f in utts).encode())
            _add(tf, f"{top}/etc/an4_{split}.transcription",
                 "".join(f"{line}\n" for line, _ in utts.values()).encode())
            for fid in utts:
                samples, rate = sf.read(src / "wav" / f"{fid}.wav", dtype="int16")
                sph = io.BytesIO()
                sf.write(sph, samples, rate, format="NIST", subtype="PCM_16", endian="BIG")
                _add(tf, f"{top}/wav/{fid}.sph", sph.getvalue())
        for name, data in (extra or {}).items():
            _add(tf, name, data)
    return path


def serve_archive(root: Path, **kwargs) -> str:
    """CMU's archive under `root` (ARCHIVE) made of the test's utterances; returns its sha256."""
    return sha256sum(make_archive(root / ARCHIVE, utterances("train", TRAIN_SPEAKERS),
                                  utterances("test", TEST_SPEAKERS), **kwargs))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = tmp_path_factory.mktemp("an4") / "data"
    return corpus("an4"), data, an4.prepare_an4(corpus("an4"), data)


def test_data_dirs(prepared):
    src, data, paths = prepared
    train, test = load_data_dir(paths["train"]), load_data_dir(paths["test"])
    assert len(train.utts) == 948 and len(test.utts) == 130
    assert len(train.spk2utt) == 74 and len(test.spk2utt) == 10
    assert not set(train.spk2utt) & set(test.spk2utt)
    for d in (train, test):
        assert d.utts == sorted(d.utts)
        for utt, spk in d.utt2spk.items():
            assert utt.startswith(f"{spk}-") and utt.split("-")[2] == spk
    # First lines of etc/an4_{train,test}.transcription: train's <s> </s> are stripped.
    assert train.text["fash-an251-fash-b"] == ["YES"]
    wav = src.resolve() / "wav" / "an4_clstk" / "fash" / "an251-fash-b.wav"
    assert train.wav["fash-an251-fash-b"] == str(wav)
    assert test.text["fcaw-an406-fcaw-b"] == "RUBOUT G M E F THREE NINE".split()
    assert test.text["mjgm-cen8-mjgm-b"] == "NOVEMBER NINTH SIXTY FIVE".split()
    assert sum(len(w) for w in train.text.values()) == 5442  # as SOURCE.md counts them
    assert sum(len(w) for w in test.text.values()) == 773
    for d in ("train", "test", "local", "local/dict"):
        assert (data / d / ".done").exists()


def test_dict_and_lm(prepared):
    src, data, paths = prepared
    lex = (paths["dict"] / "lexicon.txt").read_text().splitlines()
    assert lex[0] == "<SIL> SIL" and len(lex) == 131  # 130 entries of an4.dic + <SIL>
    assert len({ln.split()[0] for ln in lex}) == 102  # 101 words + <SIL>
    assert lex[1:3] == ["A AH", "A EY"]  # A(2) is an alternative of A
    assert {"ZERO Z IH R OW", "ZERO Z IY R OW", "ONE HH W AH N", "ONE W AH N", "O OW",
            "OH OW"} <= set(lex)
    phones = (paths["dict"] / "nonsilence_phones.txt").read_text().split()
    assert len(phones) == 33 and "SIL" not in phones and phones[:3] == ["AA", "AE", "AH"]
    assert (paths["dict"] / "silence_phones.txt").read_text() == "SIL\n"

    arpa = paths["lm"].read_text()
    assert "ngram 3=" in arpa and "\nngram 4=" not in arpa
    # Vocabulary = lexicon words: test-only NOVEMBER has a unigram; trained on train text only.
    assert "\tNOVEMBER\n" in arpa and "<unk>" not in arpa
    train = list(load_data_dir(paths["train"]).text.values())
    words = {ln.split()[0] for ln in lex[1:]}
    assert arpa == train_kneser_ney(train, order=3, vocab=words).to_arpa()


def test_dev_speakers_are_whole_training_speakers_out_of_train_and_the_lm(prepared, tmp_path,
                                                                          capsys):
    src, _, paths = prepared
    full = load_data_dir(paths["train"])
    dev_paths = an4.prepare_an4(src, tmp_path / "data", dev_speakers=6)
    train, dev = load_data_dir(dev_paths["train"]), load_data_dir(dev_paths["dev"])
    # evenly spread over the 74 sorted speakers: both f and m ones
    assert sorted(dev.spk2utt) == ["fjdn", "ftal", "mdcs2", "mjes", "mmtm", "msmn"]
    assert not set(train.spk2utt) & set(dev.spk2utt)
    assert sorted(train.utts + dev.utts) == full.utts and len(dev.utts) == 74
    assert {u: full.text[u] for u in dev.utts} == dev.text
    words = {ln.split()[0] for ln in (dev_paths["dict"] / "lexicon.txt").read_text().splitlines()}
    assert dev_paths["lm"].read_text() == train_kneser_ney(
        list(train.text.values()), order=3, vocab=words - {"<SIL>"}).to_arpa()
    assert ("dev: 74 utterances of 6 training speakers (fjdn ftal mdcs2 mjes mmtm msmn), out of "
            "train and the LM") in capsys.readouterr().err
    an4.prepare_an4(src, tmp_path / "data")  # without them: train is whole again, no dev
    assert load_data_dir(dev_paths["train"]).utts == full.utts
    assert not (tmp_path / "data" / "dev").exists()
    with pytest.raises(ValueError, match="^--dev-speakers 74: the training set has 74 speakers$"):
        an4.prepare_an4(src, tmp_path / "data2", dev_speakers=74)


def test_rerun_order_and_oov_error(tmp_path, capsys):
    src, data = corpus("an4"), tmp_path / "data"
    paths = an4.prepare_an4(src, data, lm_order=2)
    assert "2-gram Kneser-Ney LM: test perplexity 20.51" in capsys.readouterr().err
    paths["lm"].write_text("stale\n")
    an4.prepare_an4(src, data, lm_order=2)
    assert paths["lm"].read_text() == "stale\n"  # done: skipped
    an4.prepare_an4(src, data, lm_order=1)  # another LM order redoes it
    assert "ngram 1=103\n\n" in paths["lm"].read_text()

    # A copy of etc/ cut to two utterances per split (and their audio), with one word that
    # is not in an4.dic.
    bad = tmp_path / "an4"
    shutil.copytree(src / "etc", bad / "etc")
    for name in ("an4_train", "an4_test"):
        for ext in ("fileids", "transcription"):
            f = bad / "etc" / f"{name}.{ext}"
            f.write_text("".join(f.read_text().splitlines(keepends=True)[:2]))
        for fid in (bad / "etc" / f"{name}.fileids").read_text().split():
            (bad / "wav" / fid).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / "wav" / f"{fid}.wav", bad / "wav" / f"{fid}.wav")
    assert len(load_data_dir(an4.prepare_an4(bad, tmp_path / "ok")["test"]).utts) == 2
    tr = bad / "etc" / "an4_test.transcription"
    tr.write_text(tr.read_text().replace("ERASE C Q", "ERASE CUE Q"))
    capsys.readouterr()
    assert an4.main(["prepare", "--corpus-dir", str(bad), "--data-dir", str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err == (f"error: {tr}:2: utterance 'an407-fcaw-b': word 'CUE' "
                                       f"is not in {bad / 'etc' / 'an4.dic'}\n")
    assert not (tmp_path / "d" / "local" / ".done").exists()
    # a file id whose audio is neither .wav nor .sph names the list, the line and the paths
    fid = (bad / "etc" / "an4_train.fileids").read_text().split()[1]
    (bad / "wav" / f"{fid}.wav").unlink()
    with pytest.raises(ValueError, match=(
            f"^{bad / 'etc' / 'an4_train.fileids'}:2: no audio file {bad / 'wav' / fid}.wav "
            f"or {bad / 'wav' / fid}.sph$")):
        an4.prepare_an4(bad, tmp_path / "e")


def test_cli_runs_as_module(tmp_path):
    """As the recipe runs it: `python -m local.an4` elsewhere, the checkout on PYTHONPATH."""
    script = [sys.executable, "-m", "local.an4"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([*script, "download"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(corpus("an4").resolve())
    proc = subprocess.run([*script, "download", "--corpus-dir",
                           str(tmp_path / "none"), "--dest", str(tmp_path / "c")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == (
        f"error: no AN4 corpus (etc/an4_train.fileids and wav/) at {tmp_path / 'none'} (leave "
        f"--corpus-dir out to download)\n")
    assert not (tmp_path / "c").exists()
    subprocess.run([*script, "prepare", "--corpus-dir", out.stdout.strip(),
                    "--lm-order", "1"], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert len(load_data_dir(tmp_path / "data" / "train").utts) == 948


# ---------------------------------------------------------------- CMU's archive


def download(url: str, dest: Path, *extra: str) -> int:
    return an4.main(["download", "--dest", str(dest), "--no-shared", "--url", url,
                     "--no-progress", *extra])


def test_download_sphere_then_prepare(http_server, tmp_path, capsys):
    root, base = http_server
    sha = serve_archive(root)
    url, dest = f"{base}/{ARCHIVE}", tmp_path / "corpus"
    assert download(url, dest, "--sha256", sha) == 0
    out, err = capsys.readouterr()
    got = dest / "an4"
    assert out == f"{got.resolve()}\n"
    assert f"an4: downloading {url}\n" in err and "sha256 of" not in err  # pinned: verified
    assert os.listdir(dest) == ["an4"]  # the archive and the unpack dir are gone
    train, test = utterances("train", TRAIN_SPEAKERS), utterances("test", TEST_SPEAKERS)
    for fid in [*train, *test]:
        want, _ = sf.read(corpus("an4") / "wav" / f"{fid}.wav", dtype="int16")
        have, rate = sf.read(got / "wav" / f"{fid}.sph", dtype="int16")
        assert rate == 16000 and np.array_equal(have, want), fid
    assert f"an4: unpacked {len(train) + len(test)} audio files into {got}\n" in err

    paths = an4.prepare_an4(got, tmp_path / "data")
    tr, te = load_data_dir(paths["train"]), load_data_dir(paths["test"])
    assert len(tr.utts) == len(train) == 16 and len(te.utts) == len(test) == 8
    fid = next(iter(test))
    utt = f"{fid.split('-')[1]}-{fid.split('/')[-1]}"
    assert te.wav[utt] == str((got / "wav" / f"{fid}.sph").resolve())
    assert te.text[utt] == test[fid][1]
    assert set(tr.utt2spk.values()) == set(TRAIN_SPEAKERS)

    assert download(url, dest, "--sha256", sha, "--force") == 0  # fetched again, replacing it
    out, err = capsys.readouterr()
    assert out == f"{got.resolve()}\n" and f"an4: downloading {url}\n" in err
    assert os.listdir(dest) == ["an4"] and len(list((got / "wav").rglob("*.sph"))) == 24

    (root / ARCHIVE).unlink()  # complete: no network needed the second time
    assert download(url, dest) == 0
    out, err = capsys.readouterr()
    assert out == f"{got.resolve()}\n" and "already complete; skipping download" in err
    # the shared copy first, unless --no-shared
    assert an4.main(["download", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out == f"{corpus('an4').resolve()}\n"


def test_unpinned_download_logs_sha256(http_server, tmp_path, capsys):
    root, base = http_server
    sha = serve_archive(root)
    assert download(f"{base}/{ARCHIVE}", tmp_path / "corpus") == 0
    assert (f"an4: sha256 of an4_sphere.tar.gz: {sha} (unverified: CMU publishes no sha256 for "
            f"it; pin it with --sha256)\n") in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "corpus")) == ["an4"]


def test_wrong_checksum_leaves_nothing(http_server, tmp_path, capsys):
    root, base = http_server
    sha, bad = serve_archive(root), "0" * 64
    dest = tmp_path / "corpus"
    assert download(f"{base}/{ARCHIVE}", dest, "--sha256", bad) == 1
    assert (f"error: {base}/{ARCHIVE}: checksum mismatch: expected {bad}, got {sha}\n"
            in capsys.readouterr().err)
    assert not dest.exists()


def test_truncated_archive_leaves_nothing(http_server, tmp_path, capsys):
    root, base = http_server
    serve_archive(root)
    archive = root / ARCHIVE
    archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
    dest = tmp_path / "corpus"
    assert download(f"{base}/{ARCHIVE}", dest, "--sha256", sha256sum(archive)) == 1
    assert (f"error: {dest / 'an4_sphere.tar.gz'}: cannot extract (damaged or truncated "
            f"archive?)") in capsys.readouterr().err
    assert not dest.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"extra": {"../evil": b"x"}}, "member '../evil': path escapes the target directory"),
    ({"top": "an4_sphere"}, "no an4/etc/an4_train.fileids and an4/wav/ in the archive"),
], ids=["escaping", "no-an4"])
def test_bad_members_leave_nothing(http_server, tmp_path, capsys, kwargs, message):
    root, base = http_server
    serve_archive(root, **kwargs)
    dest = tmp_path / "corpus"
    dest.mkdir()  # a --dest that is there already stays, empty
    assert download(f"{base}/{ARCHIVE}", dest) == 1
    assert f"error: {dest / 'an4_sphere.tar.gz'}: {message}\n" in capsys.readouterr().err
    assert os.listdir(dest) == [] and not (tmp_path / "evil").exists()


def test_unreachable_archive_names_the_url(http_server, tmp_path, capsys):
    _, base = http_server
    dest = tmp_path / "corpus"
    assert download(f"{base}/{ARCHIVE}", dest) == 1  # nothing served there
    assert (f"error: {base}/{ARCHIVE}: cannot download: HTTP 404 File not found\n"
            in capsys.readouterr().err)
    assert download("http://127.0.0.1:9/an4_sphere.tar.gz", dest, "--sha256", "0" * 64) == 1
    assert ("error: http://127.0.0.1:9/an4_sphere.tar.gz: cannot download: [Errno 111] "
            "Connection refused\n") in capsys.readouterr().err
    assert not dest.exists()
