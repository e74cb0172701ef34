"""local/timit.py on a small corpus in TIMIT's layout made of real speech: AN4 utterances from
the shared copy renamed into TRAIN|TEST/DR*/<SPEAKER>/, their audio written as NIST SPHERE,
with .PHN files made from an4.dic's pronunciations in TIMIT's 61 phones (h# at both ends,
closures before stops, a pau, q before a vowel-initial word, ax/ix/axr for unstressed vowels;
sample boundaries spread evenly), .WRD and .TXT beside them. The test side uses speakers of the
core test and dev lists, and one speaker in neither. Then the 61 -> 48 -> 39 phone maps, the
split, the dictionary and score map, SPHERE reading, errors that name the file and line, and
fetching an archive of the copy over local HTTP (a wrong sha256 leaves nothing behind)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.data import load_data_dir
from asr_kd.data.audio import AudioError, read_audio
from asr_kd.score.wer import read_score_map
from asr_kd.utils.archive import sha256sum
from local import timit
from tests.conftest import REPO, corpus

# AN4 speaker -> (TIMIT part, region, speaker id). The test side: two core-test speakers, two
# dev speakers and one in neither list (its sentences are not used).
SPEAKERS = {"fash": ("TRAIN", "DR1", "FASH0"), "fbbh": ("TRAIN", "DR2", "FBBH0"),
            "mblb": ("TRAIN", "DR1", "MBLB0"), "mblw": ("TRAIN", "DR3", "MBLW0"),
            "fcaw": ("TEST", "DR1", "FELC0"), "marh": ("TEST", "DR2", "MDAB0"),
            "fjlp": ("TEST", "DR1", "FAKS0"), "menk": ("TEST", "DR4", "MGWT0"),
            "miry": ("TEST", "DR5", "MRTT0")}
CORE, DEV, UNUSED = {"felc0", "mdab0"}, {"faks0", "mgwt0"}, "mrtt0"
PER_SPEAKER = 4  # SI/SX sentences per speaker, besides SA1 and SA2
STOPS = {"B": "bcl", "D": "dcl", "G": "gcl", "P": "pcl", "T": "tcl", "K": "kcl", "CH": "tcl",
         "JH": "dcl"}
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH",
          "UW"}
UNSTRESSED = {"ah": "ax", "ih": "ix", "er": "axr"}


def _an4_utterances() -> dict[str, list[tuple[Path, list[str]]]]:
    """{AN4 speaker: [(wav, words), ...]}: the PER_SPEAKER + 2 smallest recordings of each."""
    src, out = corpus("an4"), {}
    for split in ("train", "test"):
        ids = (src / "etc" / f"an4_{split}.fileids").read_text().split()
        lines = (src / "etc" / f"an4_{split}.transcription").read_text().splitlines()
        for fid, line in zip(ids, lines, strict=True):
            spk = fid.split("/")[1]
            if spk in SPEAKERS:
                words = [w for w in line.rsplit("(", 1)[0].split() if w not in ("<s>", "</s>")]
                out.setdefault(spk, []).append((src / "wav" / f"{fid}.wav", words))
    return {s: sorted(u, key=lambda x: x[0].stat().st_size)[:PER_SPEAKER + 2]
            for s, u in out.items()}


def _an4_lexicon() -> dict[str, list[str]]:
    lex = {}
    for line in (corpus("an4") / "etc" / "an4.dic").read_text().splitlines():
        word, *phones = line.split()
        lex.setdefault(word, phones)  # the first pronunciation
    return lex


def timit_phones(words: list[str], lexicon) -> tuple[list[str], list[tuple[int, int]]]:
    """The 61-phone sequence of a sentence as TIMIT transcribes one, and each word's span in
    it (first phone, one past the last)."""
    phones, spans = ["h#"], []
    for i, w in enumerate(words):
        pron = lexicon[w]
        if i == 2:
            phones.append("pau")
        if i > 0 and pron[0] in VOWELS:
            phones.append("q")
        start, vowel_seen = len(phones), False
        for p in pron:
            if p in STOPS:
                phones.append(STOPS[p])
            q = p.lower()
            if p in VOWELS:
                q = UNSTRESSED.get(q, q) if vowel_seen else q
                vowel_seen = True
            phones.append(q)
        spans.append((start, len(phones)))
    return phones + ["h#"], spans


def make_timit(root: Path, lower: bool = False) -> dict[str, list[str]]:
    """A TIMIT copy under `root` (upper-case names as LDC's CD, or all lower-case); returns
    {utterance id as prepared: its 61 phones} of every SI and SX sentence written."""
    lexicon, written = _an4_lexicon(), {}

    def name(s: str) -> str:
        return s.lower() if lower else s

    for spk, utts in _an4_utterances().items():
        part, region, tspk = SPEAKERS[spk]
        d = root / name(part) / name(region) / name(tspk)
        d.mkdir(parents=True)
        stems = ["SA1", "SA2"] + [f"S{'IX'[i % 2]}{1400 + 7 * i}" for i in range(PER_SPEAKER)]
        for stem, (wav, words) in zip(stems, utts, strict=True):
            samples, rate = sf.read(wav, dtype="int16")
            sf.write(d / name(f"{stem}.WAV"), samples, rate, format="NIST", subtype="PCM_16")
            phones, spans = timit_phones(words, lexicon)
            bounds = [round(k * len(samples) / len(phones)) for k in range(len(phones) + 1)]
            (d / name(f"{stem}.PHN")).write_text("".join(
                f"{bounds[k]} {bounds[k + 1]} {p}\n" for k, p in enumerate(phones)))
            (d / name(f"{stem}.WRD")).write_text("".join(
                f"{bounds[a]} {bounds[b]} {w.lower()}\n" for w, (a, b) in zip(words, spans)))
            (d / name(f"{stem}.TXT")).write_text(
                f"0 {len(samples)} {' '.join(words).capitalize()}.\n")
            if not stem.startswith("SA"):
                written[f"{tspk.lower()}_{stem.lower()}"] = phones
    return written


def archive_of(src: Path, path: Path, top: str = "TIMIT") -> Path:
    """`src` as a tar.gz (or .zip) whose members sit under `top`/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for f in files:
                zf.write(f, f"{top}/{f.relative_to(src)}")
    else:
        with tarfile.open(path, "w:gz", compresslevel=1) as tf:
            for f in files:
                tf.add(f, arcname=f"{top}/{f.relative_to(src)}")
    return path


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("timit") / "TIMIT"
    return root, make_timit(root)


@pytest.fixture(scope="module")
def prepared(copy, tmp_path_factory):
    root, written = copy
    out = tmp_path_factory.mktemp("timit_data") / "data"
    return root, written, out, timit.prepare_timit(root, out)


# ---------------------------------------------------------------- phone maps


def test_phone_maps_61_48_39():
    assert len(timit.PHONE_MAP) == 61 and timit.PHONE_MAP["q"] is None
    assert len(timit.PHONES_48) == 48 and len(set(timit.FOLD_48_39.values())) == 39
    seq = "h# q ao ix zh bcl b kcl k pau epi ax-h axr hv ux nx el em en eng dx h#".split()
    assert timit.map_phones(seq, 48) == \
        "sil ao ix zh vcl b cl k sil epi ax er hh uw n el m en ng dx sil".split()
    assert timit.map_phones(seq, 39) == \
        "sil aa ih sh sil b sil k sil sil ah er hh uw n l m n ng dx sil".split()
    # the 39 are what folding the 48 gives: the score map is 48 -> 39
    assert [timit.FOLD_48_39[p] for p in timit.map_phones(seq, 48)] == timit.map_phones(seq, 39)
    with pytest.raises(ValueError, match="unknown TIMIT phone 'xx'"):
        timit.map_phones(["xx"])
    with pytest.raises(ValueError, match="map to 48 or 39, not 60"):
        timit.map_phones(["aa"], 60)


def test_speaker_lists_are_kaldis():
    assert len(timit.CORE_TEST_SPEAKERS) == 24 and len(timit.DEV_SPEAKERS) == 50
    assert not set(timit.CORE_TEST_SPEAKERS) & set(timit.DEV_SPEAKERS)
    assert {"mdab0", "fdhc0", "mpam0"} <= set(timit.CORE_TEST_SPEAKERS)
    assert {"faks0", "mrjm4", "fcal1", "mrws1"} <= set(timit.DEV_SPEAKERS)
    assert CORE <= set(timit.CORE_TEST_SPEAKERS) and DEV <= set(timit.DEV_SPEAKERS)
    assert UNUSED not in set(timit.CORE_TEST_SPEAKERS) | set(timit.DEV_SPEAKERS)


# ---------------------------------------------------------------- data preparation


def test_split_by_speaker_lists_and_sa_dropped(prepared):
    root, written, _, paths = prepared
    sets = {k: load_data_dir(paths[k]) for k in ("train", "dev", "test")}
    speakers = {k: set(d.utt2spk.values()) for k, d in sets.items()}
    assert speakers == {"train": {"fash0", "fbbh0", "mblb0", "mblw0"}, "dev": DEV, "test": CORE}
    for d in sets.values():
        assert len(d.utts) == PER_SPEAKER * len(d.spk2utt)
        assert not [u for u in d.utts if "_sa" in u]  # SA1, SA2 dropped
        assert all(re.fullmatch(r"[fm][a-z]{3}\d_s[ix]\d+", u) for u in d.utts)
    assert set().union(*(d.utts for d in sets.values())) == \
        {u for u in written if not u.startswith(UNUSED)}
    utt = "felc0_si1400"
    assert sets["test"].wav[utt] == str(root / "TEST" / "DR1" / "FELC0" / "SI1400.WAV")
    assert sets["test"].text[utt] == timit.map_phones(written[utt], 48)
    assert sets["test"].text[utt][0] == sets["test"].text[utt][-1] == "sil"
    assert "q" not in {p for d in sets.values() for ws in d.text.values() for p in ws}


def test_dict_score_map_and_lm(prepared):
    _, _, out, paths = prepared
    d = paths["dict"]
    lexicon = d.joinpath("lexicon.txt").read_text().splitlines()
    assert lexicon == [f"{p} {p}" for p in timit.PHONES_48]
    assert d.joinpath("silence_phones.txt").read_text() == "sil\n"
    assert d.joinpath("optional_silence.txt").read_text() == "sil\n"
    assert len(d.joinpath("nonsilence_phones.txt").read_text().split()) == 47
    score_map = read_score_map(d / "score_map.txt")
    assert score_map == timit.FOLD_48_39
    assert {score_map[p] for p in ("ao", "ix", "zh", "vcl", "cl", "epi", "el", "en")} == \
        {"aa", "ih", "sh", "sil", "l", "n"}
    arpa = paths["lm"].read_text()
    assert "\\2-grams:" in arpa and "\\3-grams:" not in arpa  # a bigram, as Kaldi's
    assert (out / "local" / "timit_options").read_text().startswith("corpus=")


def test_sphere_audio_read_as_is(copy, tmp_path):
    root, _ = copy
    wav = root / "TEST" / "DR1" / "FELC0" / "SI1400.WAV"
    assert wav.read_bytes()[:8] == b"NIST_1A\n"
    an4 = _an4_utterances()["fcaw"][2][0]
    samples, rate = read_audio(str(wav))
    ref, ref_rate = sf.read(an4, dtype="int16")
    assert rate == ref_rate == 16000 and np.array_equal(samples, ref.astype(np.float32))
    half = tmp_path / "HALF.WAV"  # a half-copied file is refused, not read short
    half.write_bytes(wav.read_bytes()[:len(wav.read_bytes()) // 2])
    with pytest.raises(AudioError, match=f"audio '{half}': truncated: header declares "
                                         f"{len(ref)} samples but the file holds"):
        read_audio(str(half))


def test_lower_case_copy_below_the_dir_given(prepared, tmp_path):
    """An LDC copy with lower-case names, two levels below the directory given."""
    _, written, _, upper = prepared
    make_timit(tmp_path / "LDC93S1" / "timit", lower=True)
    assert timit.find_timit(tmp_path / "LDC93S1") == (tmp_path / "LDC93S1" / "timit").resolve()
    paths = timit.prepare_timit(tmp_path / "LDC93S1", tmp_path / "data")
    for k in ("train", "dev", "test"):
        a, b = load_data_dir(paths[k]), load_data_dir(upper[k])
        assert a.text == b.text and a.utt2spk == b.utt2spk
    assert load_data_dir(paths["test"]).wav["felc0_si1400"].endswith("test/dr1/felc0/si1400.wav")


def test_rerun_skips_and_errors_name_file_and_line(copy, prepared, tmp_path, capsys):
    root, _, out, _ = prepared
    timit.prepare_timit(root, out)
    assert "already prepared" in capsys.readouterr().err
    bad = tmp_path / "bad" / "TIMIT"
    make_timit(bad)
    phn = bad / "TEST" / "DR1" / "FELC0" / "SI1400.PHN"
    lines = phn.read_text().splitlines()
    phn.write_text("\n".join(lines[:2] + ["2400 ah 3000"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=re.escape(
            f"{phn}:3: expected 'START END PHONE' (sample numbers, START <= END), got "
            f"'2400 ah 3000'")):
        timit.prepare_timit(bad, tmp_path / "d1")
    phn.write_text("\n".join(lines[:3] + ["0 10 oops"] + lines[4:]) + "\n")
    with pytest.raises(ValueError, match=re.escape(
            f"{phn}:4: unknown phone 'oops' (not one of TIMIT's 61)")):
        timit.prepare_timit(bad, tmp_path / "d2")
    phn.unlink()
    with pytest.raises(ValueError, match=re.escape(
            f"{phn.with_suffix('.WAV')}: no si1400.PHN (in any case) beside it")):
        timit.prepare_timit(bad, tmp_path / "d3")
    with pytest.raises(ValueError, match="no TIMIT copy \\(TRAIN/ and TEST/, in any case\\)"):
        timit.find_timit(tmp_path / "bad" / "TIMIT" / "TEST")


def test_split_needs_every_set():
    utts = {"fash0_si1": ("train", Path("a"), Path("a"), "fash0"),
            "mdab0_si1": ("test", Path("b"), Path("b"), "mdab0")}
    with pytest.raises(ValueError, match="no dev utterances: no SI or SX sentence under TEST/ "
                                         "of a dev speaker"):
        timit.split_sets(utts)


def test_cli_runs_as_module(copy, tmp_path):
    root, _ = copy
    script, env = [sys.executable, "-m", "local.timit"], dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([*script, "download", "--corpus-dir", str(root.parent),
                           "--dest", str(tmp_path / "corpus")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(root.resolve())
    proc = subprocess.run([*script, "download", "--dest", str(tmp_path / "c")], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "TIMIT (LDC93S1) is licensed by the LDC" in proc.stderr
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- from the user's mirror


def download(url: str, dest: Path, sha256: str | None, *extra) -> int:
    return timit.main(["download", "--dest", str(dest), "--url", url, "--no-progress",
                       *(["--sha256", sha256] if sha256 else []), *extra])


def test_fetch_verify_unpack_and_rerun(copy, http_server, tmp_path, capsys):
    root, _ = copy
    srv, base = http_server
    sha = sha256sum(archive_of(root, srv / "timit.tar.gz"))
    dest = tmp_path / "corpus"
    assert download(f"{base}/timit.tar.gz", dest, sha) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == str((dest / "TIMIT").resolve())
    assert sorted(p.name for p in dest.iterdir()) == [".completed", "TIMIT"]
    assert (dest / ".completed").read_text() == f"{sha}\n"
    assert (dest / "TIMIT" / "TEST" / "DR1" / "FELC0" / "SI1400.WAV").read_bytes() == \
        (root / "TEST" / "DR1" / "FELC0" / "SI1400.WAV").read_bytes()
    assert download(f"{base}/timit.tar.gz", dest, sha) == 0
    assert "already complete; skipping download" in capsys.readouterr().err
    # without --url, the complete download is found again
    assert timit.main(["download", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str((dest / "TIMIT").resolve())


def test_zip_with_lower_case_names_unpinned(http_server, tmp_path, capsys):
    """A zip whose copy sits two levels down with lower-case names; without --sha256 it is
    fetched and its sha256 logged."""
    srv, base = http_server
    make_timit(tmp_path / "src", lower=True)
    sha = sha256sum(archive_of(tmp_path / "src", srv / "timit.zip", top="ldc/timit"))
    dest = tmp_path / "corpus"
    assert download(f"{base}/timit.zip", dest, None) == 0
    out, err = capsys.readouterr()
    assert (f"sha256 of timit-archive: {sha} (unverified: no --sha256 given; pass --sha256 HEX "
            f"to check it)") in err
    assert out.strip() == str((dest / "TIMIT").resolve())
    assert (dest / "TIMIT" / "test" / "dr1" / "felc0" / "si1400.phn").is_file()
    assert (dest / ".completed").read_text() == f"{sha}\n"


def test_wrong_sha256_or_no_copy_leaves_nothing(copy, http_server, tmp_path, capsys):
    root, _ = copy
    srv, base = http_server
    sha = sha256sum(archive_of(root, srv / "timit.tar.gz"))
    dest, wrong = tmp_path / "corpus", "0" * 64
    assert download(f"{base}/timit.tar.gz", dest, wrong) == 1
    assert (f"error: {base}/timit.tar.gz: checksum mismatch: expected {wrong}, got {sha}"
            in capsys.readouterr().err)
    assert not dest.exists()
    with tarfile.open(srv / "other.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("README")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    assert download(f"{base}/other.tar.gz", dest, None) == 1
    assert (f"error: {base}/other.tar.gz: the archive holds no TIMIT copy"
            in capsys.readouterr().err)
    assert not dest.exists()
