"""local/librispeech.py: the shared hour split by speaker (CMUdict + <UNK>, the LM text rule),
the en_us LM's lexicon rule and case normalisation (a small upper-case ARPA in its place),
dev_clean on the real MP3 files with the real en_us LM, and OpenSLR downloads over local HTTP
of archives in LibriSpeech's own layout, made of real utterances from the shared hour:
verified, unpacked, prepared; and a wrong checksum, a truncated archive or a member escaping
the target stops with a clear error and leaves nothing behind."""

from __future__ import annotations

import gzip
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
from asr_kd.data.audio import iter_utterance_audio, read_audio
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.utils.archive import sha256sum
from local import librispeech as ls
from local.librispeech import UNK, prepare_librispeech, read_other_text
from tests.conftest import REPO, corpus

# Real utterances (each speaker's shortest) renamed into OpenSLR parts: a training part of four
# speakers and a test part of another one.
TRAIN_SPEAKERS, TEST_SPEAKERS, PER_SPEAKER = ("1737", "1867", "1898", "1970"), ("332",), 3


def utterances(speakers, n: int = PER_SPEAKER) -> dict[str, tuple[Path, list[str]]]:
    """{utt: (flac, words)}: the n smallest FLAC files of each speaker in the shared hour."""
    src, out = corpus("librispeech_subset") / "train-clean-5", {}
    for spk in speakers:
        for flac in sorted(src.glob(f"{spk}/*/*.flac"), key=lambda p: p.stat().st_size)[:n]:
            trans = flac.parent / f"{'-'.join(flac.stem.split('-')[:2])}.trans.txt"
            line = next(ln for ln in trans.read_text().splitlines() if ln.split()[0] == flac.stem)
            out[flac.stem] = (flac, line.split()[1:])
    return out


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_part(path: Path, part: str, utts, extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz laid out as OpenSLR's: LibriSpeech/{SPEAKERS.TXT, <part>/<spk>/<chap>/...}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chapters: dict[str, list[str]] = {}
    for utt in utts:
        chapters.setdefault("-".join(utt.split("-")[:2]), []).append(utt)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        tf.add(corpus("librispeech_subset") / "SPEAKERS.TXT", arcname="LibriSpeech/SPEAKERS.TXT")
        for chap, ids in sorted(chapters.items()):
            d = f"LibriSpeech/{part}/{chap.replace('-', '/')}"
            for utt in sorted(ids):
                tf.add(utts[utt][0], arcname=f"{d}/{utt}.flac")
            _add(tf, f"{d}/{chap}.trans.txt",
                 "".join(f"{u} {' '.join(utts[u][1])}\n" for u in sorted(ids)).encode())
        for name, data in (extra or {}).items():
            _add(tf, name, data)
    return path


def serve_parts(root: Path, parts: dict[str, dict]) -> dict[str, str]:
    """Write each part's archive under root/<resource>/; returns {archive name: sha256}."""
    return {f"{p}.tar.gz": sha256sum(make_part(root / str(ls.RESOURCE[p]) / f"{p}.tar.gz", p, u))
            for p, u in parts.items()}


def write_checksums(path: Path, sums: dict[str, str]) -> Path:
    path.write_text("".join(f"{sha}  {name}\n" for name, sha in sums.items()))
    return path


def serve_lm(root: Path, train_text, drop: str) -> dict[str, str]:
    """OpenSLR 11 stand-ins: librispeech-lexicon.txt (CMUdict's stressed pronunciations of every
    word but `drop`, tab-separated as OpenSLR's) and a gzipped ARPA trained on `train_text`."""
    words = {w for ws in train_text for w in ws} - {drop}
    lines = []
    for line in (corpus("cmudict") / "cmudict.dict").read_text().splitlines():
        word, *phones = line.split("#")[0].split() or [""]
        if word.split("(")[0].upper() in words:
            lines.append(f"{word.split('(')[0].upper()}\t{' '.join(phones)}")
    (root / "11").mkdir(parents=True, exist_ok=True)
    (root / "11" / "librispeech-lexicon.txt").write_text("\n".join(sorted(lines)) + "\n")
    arpa = train_kneser_ney(train_text, order=3).to_arpa()
    with gzip.open(root / "11" / "3-gram.pruned.3e-7.arpa.gz", "wt") as f:
        f.write(arpa)
    return {n: sha256sum(root / "11" / n)
            for n in ("librispeech-lexicon.txt", "3-gram.pruned.3e-7.arpa.gz")}


# ---------------------------------------------------------------- the shared hour, by speaker


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    src = corpus("librispeech_subset")
    out = tmp_path_factory.mktemp("ls") / "data"
    return src, out, prepare_librispeech(src, out, split_by_speaker=True, lm="train+other")


def test_split_by_speaker(prepared):
    _, _, paths = prepared
    sets = {k: load_data_dir(paths[k]) for k in ("train", "dev", "test")}
    speakers = {k: set(d.utt2spk.values()) for k, d in sets.items()}
    # the lowest-numbered female and male speakers test, the next two dev (SPEAKERS.TXT)
    assert speakers == {"test": {"32", "332"}, "dev": {"226", "460"},
                        "train": speakers["train"]}
    assert len(speakers["train"]) == 20
    assert {k: len(d.utts) for k, d in sets.items()} == {"train": 251, "dev": 23, "test": 23}
    assert sets["test"].wav["32-21631-0000"].endswith("32/21631/32-21631-0000.flac")


def test_lexicon_unk_and_lm_text(prepared):
    src, out, paths = prepared
    test = load_data_dir(paths["test"])
    # brownie's is not in CMUdict: <UNK> in the reference too, pronounced SPN; all lower case
    assert test.text["32-21631-0002"][7:10] == ["brownie", UNK, "life"]
    lexicon = (paths["dict"] / "lexicon.txt").read_text().splitlines()
    assert lexicon[0] == f"{UNK} SPN"
    assert "brownie B R AW N IY" in lexicon
    assert (paths["dict"] / "silence_phones.txt").read_text().split() == ["SIL", "SPN"]
    # the LM never saw a dev or test speaker's sentence: a word only they use is outside it
    unigrams = ls.arpa_words(paths["lm"])
    held_out = {w for u, ws in read_other_text(src) if u.split("-")[0] in ("32", "332")
                for w in ws}
    train_words = {w for ws in load_data_dir(paths["train"]).text.values() for w in ws}
    assert held_out - train_words - unigrams  # such words exist and stay out
    assert "brownie" in held_out and "brownie" not in unigrams


def test_rerun_skips_and_errors(prepared, tmp_path, capsys):
    src, out, _ = prepared
    prepare_librispeech(src, out, split_by_speaker=True, lm="train+other")
    assert "already prepared" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--lm must be one of en_us, train\\+other, train, got "
                                         "'all'"):
        prepare_librispeech(src, tmp_path / "x", lm="all")
    with pytest.raises(ValueError, match="--split-by-speaker splits one --train part and takes "
                                         "no --test"):
        prepare_librispeech(src, tmp_path / "x", test=["dev-clean-2"], split_by_speaker=True)
    # a transcript line whose audio is missing names the file, the line and the utterance
    bad = tmp_path / "bad"
    chapter = bad / "train-clean-5" / "32" / "21631"
    chapter.mkdir(parents=True)
    shutil.copy(src / "SPEAKERS.TXT", bad / "SPEAKERS.TXT")
    (chapter / "32-21631.trans.txt").write_text("32-21631-0000 HELLO\n32-21631-0099 WORLD\n")
    shutil.copy(src / "train-clean-5/32/21631/32-21631-0000.flac", chapter)
    with pytest.raises(ValueError, match=r"32-21631\.trans\.txt:2: utterance '32-21631-0099': "
                                         r"audio file .*32-21631-0099\.flac does not exist"):
        prepare_librispeech(bad, tmp_path / "y", split_by_speaker=True)


def test_cli_runs_as_module(tmp_path):
    src = corpus("librispeech_subset")
    script, env = [sys.executable, "-m", "local.librispeech"], dict(os.environ,
                                                                   PYTHONPATH=str(REPO))
    proc = subprocess.run([*script, "download", "--dest", str(tmp_path / "corpus")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(src.resolve())
    proc = subprocess.run([*script, "download", "--corpus-dir", str(tmp_path / "none"),
                           "--dest", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no LibriSpeech copy" in proc.stderr


# ---------------------------------------------------------------- en_us, case and dev_clean


def small_upper_arpa(path: Path) -> Path:
    """A trigram on two upper-case sentences, gzipped: the en_us LM's stand-in."""
    lm = train_kneser_ney([["THE", "RECORD", "IS", "READ"], ["I", "LIVE", "HERE"]], order=3)
    with gzip.open(path, "wt") as f:
        f.write(lm.to_arpa())
    return path


def test_en_us_lexicon_and_case(tmp_path, capsys):
    """--lm en_us with a small upper-case ARPA (--arpa) in place of en-us.arpa.gz: the lexicon is
    cmudict-en-us.dict restricted to the LM's and the training transcripts' words, and the data
    dirs, the lexicon and the LM all come out lower case."""
    src, arpa = corpus("librispeech_subset"), small_upper_arpa(tmp_path / "small.arpa.gz")
    paths = prepare_librispeech(src, tmp_path / "data", split_by_speaker=True, lm="en_us",
                                arpa=arpa)
    prons: dict[str, list[str]] = {}
    for line in (paths["dict"] / "lexicon.txt").read_text().splitlines():
        word, pron = line.split(maxsplit=1)
        prons.setdefault(word, []).append(pron)
    text = {k: load_data_dir(paths[k]).text for k in ("train", "dev", "test")}
    train_words = {w for ws in text["train"].values() for w in ws}
    # an LM word, with all its pronunciations (stress-free, as the dictionary has them)
    assert prons["record"] == ["R AH K AO R D", "R EH K ER D", "R IH K AO R D"]
    assert prons["read"] == ["R EH D", "R IY D"]
    # a training word the LM lacks is there (alignment needs it); one the dictionary lacks
    # is <UNK> in its transcript and absent
    assert "pharisees" in prons and "pharisees" in train_words
    assert "ronicky" not in prons and "ronicky" not in train_words
    assert "ronicky" in {w for _, _, ws in ls.read_part(src / "train-clean-5").values()
                         for w in ws}
    assert sum(ws.count(UNK) for ws in text["train"].values()) == 158
    # dictionary words in neither the LM nor train are absent: one nowhere, one only in a test
    # transcript, where it is <UNK> (the decoder cannot say it)
    assert "aardvark" not in prons
    assert "woodchuck" not in prons
    assert text["test"]["32-21631-0010"][8:10] == ["mister", UNK]  # MISTER WOODCHUCK
    assert set(prons) == ({UNK, "the", "record", "is", "read", "i", "live", "here"}
                          | train_words)
    # one case everywhere: the upper-case ARPA was lower-cased as it was copied
    lm_words = ls.arpa_words(paths["lm"])
    assert lm_words == {"the", "record", "is", "read", "i", "live", "here"}
    with gzip.open(arpa, "rt") as f:
        assert paths["lm"].read_text() == f.read().lower()
    words = lm_words | {w for t in text.values() for ws in t.values() for w in ws}
    assert all(w == w.lower() for w in words - {UNK}) and words <= set(prons)
    err = capsys.readouterr().err
    assert f"ARPA {arpa} (lower-cased), 7 words;" in err
    test = [w for ws in text["test"].values() for w in ws]
    test_unk, test_out = test.count(UNK), sum(w not in lm_words for w in test)
    assert f"; test 23 utterances, {test_unk} {UNK}, {test_out} / 835 tokens outside the LM" in err

    mixed = tmp_path / "mixed.arpa"
    mixed.write_text(train_kneser_ney([["The", "the"]], order=1).to_arpa())
    with pytest.raises(ValueError, match=f"^{mixed}: 'The' and 'the' are both words of this LM; "
                                         f"lower-casing it would merge them$"):
        prepare_librispeech(src, tmp_path / "m", split_by_speaker=True, lm="en_us", arpa=mixed)


def test_dev_clean_mp3_and_en_us(tmp_path, capsys):
    """The command line as run.sh runs it: the real en_us LM and data/dev_clean by default, the
    817 MP3 utterances of the shared dev-clean copy, their audio decoding at 16 kHz."""
    src, dev_clean = corpus("librispeech_subset"), corpus("librispeech_dev_clean")
    corpus("lm_en_us")
    data = tmp_path / "data"
    assert ls.main(["prepare", "--corpus-dir", str(src), "--data-dir", str(data),
                    "--split-by-speaker", "--lm", "en_us"]) == 0
    d = load_data_dir(data / "dev_clean")
    assert len(d.utts) == 817 and len(d.spk2utt) == 14
    assert sum(len(ws) for ws in d.text.values()) == 18519
    utt = "174-50561-0000"
    assert d.wav[utt] == str((dev_clean / "dev-clean/174/50561" / f"{utt}.mp3").resolve())
    assert all(p.endswith(".mp3") for p in d.wav.values())
    samples, rate = read_audio(d.wav[utt])
    assert rate == 16000 and samples.ndim == 1
    assert 3.9 < len(samples) / rate < 4.1 and np.abs(samples).max() > 1000  # 4.02 s of speech
    assert d.text[utt][:3] == ["forgotten", "too", "the"]
    # as the feature stage reads a data dir: the first utterance, 14.675 s by its MP3 header
    first, samples, rate = next(iter_utterance_audio(d, sample_rate=16000))
    assert first == d.utts[0] == "1673-143396-0000"
    assert rate == 16000 and len(samples) == sf.info(d.wav[first]).frames == 234800
    # the dictionary and the LM are en_us's, the LM copied as it is (already lower case)
    assert (data / "local/lm.arpa").stat().st_size == 100617140
    lexicon = (data / "local/dict/lexicon.txt").read_text().splitlines()
    assert len({ln.split()[0] for ln in lexicon}) == 72560 + 1  # and <UNK>
    err = capsys.readouterr().err
    assert (f"dev_clean 14 speakers ({dev_clean / 'dev-clean'}); lexicon {ls.EN_US_DICT}, 72560 "
            f"words (a word not in it is {UNK}); ARPA {ls.EN_US_ARPA}, 72545 words; "
            f"train 251 utterances, 158 {UNK}, 185 / 8287 tokens outside the LM (2.2%); ") in err
    # 2.0% of dev-clean's tokens outside the LM, as lm_en_us/SOURCE.md measured
    assert f"dev_clean 817 utterances, 369 {UNK}, 374 / 18519 tokens outside the LM (2.0%)" in err
    assert ls.main(["prepare", "--corpus-dir", str(src), "--data-dir", str(tmp_path / "x"),
                    "--split-by-speaker", "--no-dev-clean", "--dev-clean", str(dev_clean)]) == 1
    assert "error: --dev-clean and --no-dev-clean both given\n" in capsys.readouterr().err


def test_dev_clean_speaker_overlap(tmp_path):
    """A dev-clean copy holding a training speaker (1737, by a real MP3 under that speaker's
    name) is refused before anything is written."""
    src, real = corpus("librispeech_subset"), corpus("librispeech_dev_clean")
    fake = tmp_path / "dev_clean"
    chapter = fake / "dev-clean" / "1737" / "146161"
    chapter.mkdir(parents=True)
    shutil.copy(real / "dev-clean/174/50561/174-50561-0000.mp3", chapter / "1737-146161-0000.mp3")
    (chapter / "1737-146161.trans.txt").write_text("1737-146161-0000 FORGOTTEN TOO\n")
    with pytest.raises(ValueError, match=f"^{fake}: speaker\\(s\\) 1737 also in data/train: "
                                         f"dev_clean must hold held-out speakers only$"):
        prepare_librispeech(src, tmp_path / "data", split_by_speaker=True, dev_clean=fake)
    assert not (tmp_path / "data").exists()
    with pytest.raises(ValueError, match="--test dev-clean and --dev-clean would both be "
                                         "data/dev_clean"):
        prepare_librispeech(src, tmp_path / "data", test=["dev-clean"], dev_clean=real)


# ---------------------------------------------------------------- OpenSLR downloads


def download(base: str, dest: Path, parts, checksums: Path | None = None, *extra) -> int:
    argv = ["download", "--dest", str(dest), "--parts", *parts, "--base-url", base,
            "--no-progress", *extra]
    return ls.main(argv + (["--checksums", str(checksums)] if checksums else []))


def leftovers(dest: Path) -> list[str]:
    """Names under dest that are not a complete part (archives, unpack dirs, temp files)."""
    return sorted(p.name for p in dest.iterdir() if p.name not in ("LibriSpeech",)
                  and not p.name.endswith(".completed"))


def test_download_parts_then_prepare(http_server, tmp_path, capsys):
    root, base = http_server
    train, test = utterances(TRAIN_SPEAKERS[:2], 2), utterances(TEST_SPEAKERS, 2)
    sums = serve_parts(root, {"train-clean-5": train, "dev-clean-2": test})
    pins = write_checksums(tmp_path / "sha256", {"train-clean-5.tar.gz":
                                                 sums["train-clean-5.tar.gz"]})
    dest = tmp_path / "corpus"
    assert download(base, dest, ["train-clean-5", "dev-clean-2"], pins) == 0
    out, err = capsys.readouterr()
    got = dest / "LibriSpeech"
    assert out.strip() == str(got.resolve())
    # dev-clean-2 was not pinned: fetched, and its sha256 logged so that a run can pin it
    assert (f"sha256 of dev-clean-2.tar.gz: {sums['dev-clean-2.tar.gz']} (unverified: OpenSLR "
            f"publishes no sha256 for it; pin it with --checksums)") in err
    assert "sha256 of train-clean-5.tar.gz" not in err
    for part, utts in (("train-clean-5", train), ("dev-clean-2", test)):
        for utt, (flac, _) in utts.items():
            spk, chap, _ = utt.split("-")
            assert (got / part / spk / chap / f"{utt}.flac").read_bytes() == flac.read_bytes()
    assert (got / "SPEAKERS.TXT").is_file()
    assert leftovers(dest) == []  # archives and unpack dirs gone
    assert sorted(p.name for p in dest.glob(".*.completed")) == [".dev-clean-2.completed",
                                                                 ".train-clean-5.completed"]
    shutil.rmtree(root / "31")  # complete: no network needed the second time
    assert download(base, dest, ["train-clean-5", "dev-clean-2"]) == 0
    assert "already complete; skipping download" in capsys.readouterr().err

    data = tmp_path / "data"
    paths = prepare_librispeech(got, data, train=["train-clean-5"], test=["dev-clean-2"])
    assert set(paths) == {"train", "dev_clean_2", "dict", "lm"}
    tr, dv = load_data_dir(paths["train"]), load_data_dir(paths["dev_clean_2"])
    assert tr.utts == sorted(train) and dv.utts == sorted(test)
    utt = tr.utts[0]
    spk, chap, _ = utt.split("-")
    assert tr.wav[utt] == str((got / "train-clean-5" / spk / chap / f"{utt}.flac").resolve())
    assert tr.utt2spk[utt] == spk and tr.text[utt] == [w.lower() for w in train[utt][1]]
    # the trigram is on the training text only: dev words it lacks are outside the LM
    assert ls.arpa_words(paths["lm"]) == {w for ws in tr.text.values() for w in ws}
    assert (f"librispeech: train train-clean-5, test dev-clean-2; lexicon {ls.CMUDICT}, "
            in capsys.readouterr().err)


def test_default_checksum_is_torchaudios(http_server, tmp_path, capsys):
    root, base = http_server
    real = serve_parts(root, {"test-clean": utterances(TEST_SPEAKERS, 1)})["test-clean.tar.gz"]
    dest = tmp_path / "corpus"
    assert download(base, dest, ["test-clean"]) == 1
    assert (f"error: {base}/12/test-clean.tar.gz: checksum mismatch: expected "
            f"{ls.SHA256['test-clean.tar.gz']}, got {real}\n") in capsys.readouterr().err
    assert not dest.exists()


def test_wrong_checksum_keeps_only_complete_parts(http_server, tmp_path, capsys):
    root, base = http_server
    sums = serve_parts(root, {"train-clean-5": utterances(TRAIN_SPEAKERS[:1], 1),
                              "dev-clean-2": utterances(TEST_SPEAKERS, 1)})
    bad = "0" * 64
    pins = write_checksums(tmp_path / "sha256", {**sums, "dev-clean-2.tar.gz": bad})
    dest = tmp_path / "corpus"
    assert download(base, dest, ["train-clean-5", "dev-clean-2"], pins) == 1
    assert (f"error: {base}/31/dev-clean-2.tar.gz: checksum mismatch: expected {bad}, got "
            f"{sums['dev-clean-2.tar.gz']}\n") in capsys.readouterr().err
    assert leftovers(dest) == [] and (dest / ".train-clean-5.completed").exists()
    assert sorted(p.name for p in (dest / "LibriSpeech").iterdir()) == ["SPEAKERS.TXT",
                                                                      "train-clean-5"]


def test_truncated_archive_leaves_nothing(http_server, tmp_path, capsys):
    root, base = http_server
    serve_parts(root, {"dev-clean-2": utterances(TEST_SPEAKERS, 2)})
    archive = root / "31" / "dev-clean-2.tar.gz"
    archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
    pins = write_checksums(tmp_path / "sha256", {"dev-clean-2.tar.gz": sha256sum(archive)})
    dest = tmp_path / "corpus"
    assert download(base, dest, ["dev-clean-2"], pins) == 1
    assert (f"error: {dest / 'dev-clean-2.tar.gz'}: cannot extract (damaged or truncated "
            f"archive?)") in capsys.readouterr().err
    assert not dest.exists()


@pytest.mark.parametrize("member, message", [
    ("LibriSpeech/../../evil", "member 'LibriSpeech/../../evil': path escapes the target "
                               "directory"),
    ("Other/dev-clean-2/x.flac", None),  # harmless, but no LibriSpeech/dev-clean-2/ in it
], ids=["escaping", "no-part"])
def test_bad_members_leave_nothing(http_server, tmp_path, capsys, member, message):
    root, base = http_server
    archive = root / "31" / "dev-clean-2.tar.gz"
    if message:
        make_part(archive, "dev-clean-2", utterances(TEST_SPEAKERS, 1), {member: b"x"})
    else:
        make_part(archive, "other", utterances(TEST_SPEAKERS, 1), {member: b"x"})
        message = "no LibriSpeech/dev-clean-2/ in the archive"
    pins = write_checksums(tmp_path / "sha256", {"dev-clean-2.tar.gz": sha256sum(archive)})
    dest = tmp_path / "corpus"
    assert download(base, dest, ["dev-clean-2"], pins) == 1
    assert f"error: {dest / 'dev-clean-2.tar.gz'}: {message}\n" in capsys.readouterr().err
    assert not dest.exists() and not (tmp_path / "evil").exists()


def test_download_errors(tmp_path, capsys):
    assert download("http://127.0.0.1:9", tmp_path / "c", ["train-clean-7"]) == 1
    assert "error: unknown LibriSpeech part(s) train-clean-7 (known: train-clean-100," in \
        capsys.readouterr().err
    assert download("http://127.0.0.1:9", tmp_path / "c", ["dev-clean-2"], None,
                    "--corpus-dir", str(tmp_path)) == 1
    assert f"error: {tmp_path}: no dev-clean-2/ (leave --corpus-dir out to download)\n" in \
        capsys.readouterr().err
    sums = write_checksums(tmp_path / "sha256", {"a.tar.gz": "00"})
    assert download("http://127.0.0.1:9", tmp_path / "c", ["dev-clean-2"], sums) == 1
    assert (f"error: {sums}:1: expected '<sha256>  <file name>', got '00  a.tar.gz'\n" in
            capsys.readouterr().err)
    assert not (tmp_path / "c").exists()


def test_openslr_lexicon_and_arpa(http_server, tmp_path, capsys):
    """Resource 11 files: fetched (unpinned: sha256 logged), then the lexicon's stress marks
    dropped, a word it lacks mapped to <UNK>, and the gzipped ARPA used as it is."""
    root, base = http_server
    train, test = utterances(TRAIN_SPEAKERS[:2], 2), utterances(TEST_SPEAKERS, 1)
    corpus_dir = tmp_path / "LibriSpeech"
    for part, utts in (("train-clean-100", train), ("test-clean", test)):
        with tarfile.open(make_part(tmp_path / f"{part}.tar.gz", part, utts)) as tf:
            tf.extractall(tmp_path, filter="data")
    drop = sorted(train[sorted(train)[0]][1])[0]
    sums = serve_lm(root, [ws for _, ws in train.values()], drop)
    files = ["librispeech-lexicon.txt", "3-gram.pruned.3e-7.arpa.gz"]
    assert ls.main(["download-lm", "--dest", str(tmp_path / "lm"), "--files", *files,
                    "--base-url", base, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    lm_dir = Path(out.strip())
    assert lm_dir == (tmp_path / "lm").resolve()
    assert f"sha256 of librispeech-lexicon.txt: {sums['librispeech-lexicon.txt']}" in err
    assert ls.main(["download-lm", "--files", *files, "--lm-dir", str(tmp_path)]) == 1
    assert (f"error: {tmp_path}: no librispeech-lexicon.txt, 3-gram.pruned.3e-7.arpa.gz "
            f"(leave --lm-dir out to download)\n") in capsys.readouterr().err

    paths = prepare_librispeech(corpus_dir, tmp_path / "data", train=["train-clean-100"],
                                test=["test-clean"], lexicon=lm_dir / files[0],
                                arpa=lm_dir / files[1])
    with gzip.open(lm_dir / files[1], "rt") as f:  # decompressed and lower-cased
        assert paths["lm"].read_text() == f.read().lower()
    lexicon = (paths["dict"] / "lexicon.txt").read_text().splitlines()
    assert lexicon[0] == f"{UNK} SPN" and not any(c.isdigit() for c in "".join(lexicon))
    assert not any(ln.split()[0] == drop.lower() for ln in lexicon)
    tr = load_data_dir(paths["train"])
    have = {ln.split()[0] for ln in (root / "11" / files[0]).read_text().splitlines()}
    n_unk = sum(w not in have for _, ws in train.values() for w in ws)
    assert sum(ws.count(UNK) for ws in tr.text.values()) == n_unk > 0
    assert f"train {len(train)} utterances, {n_unk} {UNK}, " in capsys.readouterr().err
