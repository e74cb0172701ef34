"""`asr-kd validate-data` and the stages' own checks on bad input made from real yesno audio:
the exact error (file, line, utterance), the exit status, and nothing written where it failed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.cli import main
from asr_kd.data import DataDirError, load_data_dir, read_audio, validate_data_dir
from asr_kd.data.audio import resample
from asr_kd.features import FbankConfig, read_scp_matrices, write_feats
from asr_kd.lang import prepare_lang
from asr_kd.steps.common import load_dir_feats, write_int_vectors
from asr_kd.steps.feats import run_compute_feats
from tests.test_data import STEMS, WAVES, WORDS, good_files, wav_of, write_raw

REPO = Path(__file__).resolve().parents[1]
RECS = sorted(p.stem for p in WAVES.glob("*.wav"))[:12]


def transcript(stem: str) -> str:
    return " ".join(WORDS[c] for c in stem.split("_"))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and dir under root with its bytes: equal snapshots mean nothing was written."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def validate(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "asr_kd", "validate-data", *map(str, args)],
                          capture_output=True, text=True, env=env, check=False)


def problems_in(stderr: str) -> list[str]:
    """The problem lines (not the log lines and the closing summary)."""
    return [ln for ln in stderr.splitlines() if ": utterance '" in ln or ": speaker '" in ln]


@pytest.fixture
def restore_logging():
    """cli.main adds a log file handler per stage; drop them so later tests do not write there."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)
            h.close()


@pytest.fixture(scope="module")
def lang(tmp_path_factory) -> Path:
    """The yesno lang dir (data/lang as the recipe builds it)."""
    root = tmp_path_factory.mktemp("lang")
    d = root / "dict"
    d.mkdir()
    for name, text in (("lexicon", "<SIL> SIL\nNO N\nYES Y\n"), ("silence_phones", "SIL\n"),
                       ("optional_silence", "SIL\n"), ("nonsilence_phones", "Y\nN\n"),
                       ("extra_questions", "")):
        (d / f"{name}.txt").write_text(text)
    prepare_lang(d, root / "lang")
    return root / "lang"


def bad_corpus(root: Path) -> Path:
    """A data dir in which every utterance but three has one problem, from real recordings."""
    a = root / "audio"
    a.mkdir(parents=True)
    src = [Path(wav_of(s)) for s in RECS]
    x, sr = read_audio(str(src[0]))
    (a / "truncated.wav").write_bytes(src[3].read_bytes()[:30000])
    corrupt = bytearray(src[4].read_bytes())
    corrupt[:12] = b"\x00" * 12  # the RIFF/WAVE header gone
    (a / "corrupt.wav").write_bytes(bytes(corrupt))
    sf.write(a / "stereo.wav", np.stack([x, x], 1).astype(np.int16), sr, subtype="PCM_16")
    (a / "zero_bytes.wav").write_bytes(b"")
    sf.write(a / "no_samples.wav", np.zeros(0, np.int16), sr, subtype="PCM_16")
    up = np.clip(np.round(resample(read_audio(str(src[5]))[0], 8000, 16000)), -32768, 32767)
    sf.write(a / "16k.wav", up.astype(np.int16), 16000, subtype="PCM_16")
    (a / "a_dir.wav").mkdir()
    # utterance -> (audio, index of the recording it was made from, for its transcript)
    wav = {
        "s1_01_good": (src[0], 0),
        "s1_02_missing": (a / "missing.wav", 1),
        "s1_03_dir": (a / "a_dir.wav", 2),
        "s1_04_truncated": (a / "truncated.wav", 3),
        "s1_05_corrupt": (a / "corrupt.wav", 4),
        "s1_06_stereo": (a / "stereo.wav", 0),
        "s1_07_zero_bytes": (a / "zero_bytes.wav", 0),
        "s1_08_no_samples": (a / "no_samples.wav", 0),
        "s1_09_16k": (a / "16k.wav", 5),
        "s1_10_empty_text": (src[6], 6),
        "s1_11_oov": (src[7], 7),
        "s1_12_no_text": (src[8], 8),
        "s1_13_no_wav": (None, 9),
        "s1_14_no_spk": (src[9], 9),
        "s1_15_dup": (src[10], 10),
        "s1_16_good": (src[11], 11),
        "s1_17_good": (src[1], 1),
    }
    spk = [u for u in wav if u != "s1_14_no_spk"]
    text = {u: transcript(RECS[i]) for u, (_, i) in wav.items() if u in spk}
    text["s1_10_empty_text"] = ""
    text["s1_11_oov"] += " MAYBE"
    del text["s1_12_no_text"]
    lines = [f"{u} {t}".rstrip() for u, t in text.items()]
    i = list(text).index("s1_15_dup")
    # A second line for s1_15_dup, and s1_17_good before s1_16_good.
    lines[i + 1:i + 3] = ["s1_15_dup YES", lines[i + 2], lines[i + 1]]
    lines.append("s1_18_text_only NO")
    return write_raw(
        root / "data",
        wav_scp=[f"{u} {p}" for u, (p, _) in wav.items() if p is not None],
        text=lines,
        utt2spk=[f"{u} s1" for u in spk],
        spk2utt=["s1 " + " ".join(spk)],
    )


# Every problem of bad_corpus, in the order validate-data reports them; {d}: the data dir,
# {a}: the audio dir, {lang}: the lang dir.
EXPECTED = [
    "{d}/wav.scp:2: utterance 's1_02_missing': audio file '{a}/missing.wav' does not exist",
    "{d}/wav.scp:3: utterance 's1_03_dir': audio file '{a}/a_dir.wav' is not a regular file",
    "{d}/text:14: utterance 's1_15_dup': duplicate key (first on line 13)",
    "{d}/text:16: utterance 's1_16_good': not sorted (keys must be in byte order; previous "
    "key 's1_17_good')",
    "{d}/text:10: utterance 's1_10_empty_text': empty transcript",
    "{d}/text:17: utterance 's1_18_text_only': no speaker in utt2spk",
    "{d}/utt2spk:12: utterance 's1_12_no_text': no transcript in text",
    "{d}/utt2spk:13: utterance 's1_13_no_wav': no recording in wav.scp",
    "{d}/wav.scp:13: utterance 's1_14_no_spk': no speaker in utt2spk",
    "{d}/wav.scp:4: utterance 's1_04_truncated': audio '{a}/truncated.wav': truncated: header "
    "declares 97120 bytes of samples but the file holds 29956",
    "{d}/wav.scp:5: utterance 's1_05_corrupt': audio '{a}/corrupt.wav': cannot read: Format "
    "not recognised.",
    "{d}/wav.scp:6: utterance 's1_06_stereo': audio '{a}/stereo.wav': has 2 channels; "
    "expected mono",
    "{d}/wav.scp:7: utterance 's1_07_zero_bytes': audio '{a}/zero_bytes.wav': file is empty "
    "(0 bytes)",
    "{d}/wav.scp:8: utterance 's1_08_no_samples': audio '{a}/no_samples.wav': contains no "
    "samples",
    "{d}/wav.scp:9: utterance 's1_09_16k': audio '{a}/16k.wav': sample rate 16000 Hz, "
    "expected 8000 Hz (resampling is off)",
    "{d}/text:11: utterance 's1_11_oov': word 'MAYBE' is not in {lang}/words.txt",
]


def expected(d: Path, lang: Path) -> list[str]:
    return [e.format(d=d, a=d.parent / "audio", lang=lang) for e in EXPECTED]


def test_every_problem_reported_in_one_run_and_nothing_written(tmp_path, lang):
    d = bad_corpus(tmp_path)
    before = snapshot(tmp_path)
    r = validate(d, "--sample-rate", 8000, "--lang", lang)
    assert r.returncode == 1
    assert problems_in(r.stderr) == expected(d, lang)
    assert r.stderr.rstrip().endswith(
        f"asr-kd validate-data: error: {d}: {len(EXPECTED)} problems; nothing written "
        "(--drop-bad writes the dir without the utterances that have them)")
    assert snapshot(tmp_path) == before

    # The library: validate_data_dir collects the same problems; load_data_dir (what the
    # stages call) stops at the first of them.
    v = validate_data_dir(d, sample_rate=8000, lang_dir=lang)
    assert [str(p) for p in v.problems] == expected(d, lang)
    with pytest.raises(DataDirError) as e:
        load_data_dir(d)
    assert str(e.value) == expected(d, lang)[0]

    # With --resample a 16 kHz recording is accepted: the feats stage converts it.
    r = validate(d, "--sample-rate", 8000, "--resample", "--lang", lang)
    assert "s1_09_16k" not in r.stderr and r.returncode == 1


def test_drop_bad_keeps_the_rest_and_the_originals(tmp_path, lang):
    d = bad_corpus(tmp_path)
    originals = snapshot(d)
    r = validate(d, "--sample-rate", 8000, "--lang", lang, "--drop-bad")
    assert r.returncode == 0, r.stderr
    assert problems_in(r.stderr) == expected(d, lang)
    assert f"{d}: kept 3 of 18 utterances, dropped 15; report and original files in " \
           f"{d}/.backup" in r.stdout
    report = (d / ".backup" / "dropped.txt").read_text().splitlines()
    assert report[0] == (f"# asr-kd validate-data --drop-bad {d}: kept 3 of 18 utterances; "
                         "the files it changed are here as they were")
    by_utt = sorted(expected(d, lang), key=lambda m: m.split("utterance '")[1])
    assert report[1:] == [f"dropped {m.split(chr(39))[1]}: {m}" for m in by_utt
                          if "not sorted" not in m] + [
        f"fixed: {m}" for m in expected(d, lang) if "not sorted" in m]
    # The files it changed are in .backup as they were; the others are untouched.
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        assert (d / ".backup" / name).read_bytes() == originals[name]
    kept = ["s1_01_good", "s1_16_good", "s1_17_good"]
    assert load_data_dir(d).utts == kept
    assert (d / "spk2utt").read_text() == "s1 " + " ".join(kept) + "\n"
    assert validate(d, "--sample-rate", 8000, "--lang", lang).returncode == 0

    # A second run never overwrites the first backup.
    (d / "utt2spk").write_text("s1_01_good s1\ns1_16_good s1\n")
    r = validate(d, "--drop-bad")
    assert r.returncode == 0 and "dropped 1; report and original files in" in r.stdout
    assert (d / ".backup" / "utt2spk").read_bytes() == originals["utt2spk"]
    assert (d / ".backup.2" / "dropped.txt").read_text().splitlines()[1:] == [
        f"dropped s1_17_good: {d}/text:3: utterance 's1_17_good': no speaker in utt2spk",
        f"dropped s1_17_good: {d}/wav.scp:3: utterance 's1_17_good': no speaker in utt2spk",
        f"fixed: {d}/spk2utt:1: speaker 's1': utterance 's1_17_good' is not in utt2spk",
    ]


def test_drop_bad_drops_every_segment_of_a_bad_recording(tmp_path):
    x, sr = read_audio(wav_of(STEMS[0]))
    sf.write(tmp_path / "stereo.wav", np.stack([x, x], 1).astype(np.int16), sr,
             subtype="PCM_16")
    d = write_raw(tmp_path / "x",
                  wav_scp=[f"spk_r1 {wav_of(STEMS[1])}", f"spk_r2 {tmp_path / 'stereo.wav'}"],
                  segments=["spk_a spk_r1 0 1.2", "spk_b spk_r1 1.1 3.3", "spk_c spk_r2 0 1",
                            "spk_d spk_r2 1 2"],
                  text=["spk_a NO", "spk_b YES", "spk_c NO", "spk_d YES"],
                  utt2spk=[f"spk_{u} spk" for u in "abcd"], spk2utt=["spk spk_a spk_b spk_c spk_d"])
    msg = [f"{d}/wav.scp:2: utterance 'spk_{u}': audio '{tmp_path / 'stereo.wav'}': has 2 "
           "channels; expected mono" for u in "cd"]
    r = validate(d, "--drop-bad")
    assert r.returncode == 0 and problems_in(r.stderr) == msg
    assert (d / ".backup" / "dropped.txt").read_text().splitlines()[1:] == [
        f"dropped spk_{u}: {m}" for u, m in zip("cd", msg)]
    assert (d / "segments").read_text() == "spk_a spk_r1 0 1.2\nspk_b spk_r1 1.1 3.3\n"
    assert (d / "wav.scp").read_text() == f"spk_r1 {wav_of(STEMS[1])}\n"


def test_drop_bad_refuses_what_dropping_cannot_fix(tmp_path):
    files = good_files()
    del files["utt2spk"]
    d = write_raw(tmp_path / "x", **files)
    before = snapshot(tmp_path)
    r = validate(d, "--drop-bad")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f"{d}/utt2spk: file does not exist"
    assert r.stderr.rstrip().endswith(
        f"error: {d}: dropping utterances cannot fix {d}/utt2spk: file does not exist")
    assert snapshot(tmp_path) == before


def test_unreadable_audio():
    # Root reads any file, so as root the check runs with the effective user 'nobody', in a
    # dir that user may enter.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)
        files = good_files()
        locked = tmp / "locked.wav"
        locked.write_bytes(Path(wav_of(STEMS[1])).read_bytes())
        locked.chmod(0)
        files["wav_scp"][1] = f"s1_{STEMS[1]} {locked}"
        d = write_raw(tmp / "x", **files)
        root = os.geteuid() == 0
        if root:
            os.seteuid(65534)
        try:
            v = validate_data_dir(d)
        finally:
            if root:
                os.seteuid(0)
    assert [str(p) for p in v.problems] == [
        f"{d}/wav.scp:2: utterance 's1_{STEMS[1]}': audio file '{locked}' cannot be read: "
        "Permission denied"]


@pytest.fixture(scope="module")
def feats_dir(tmp_path_factory) -> Path:
    """Three real utterances with their features (8 kHz fbank + CMVN)."""
    d = write_raw(tmp_path_factory.mktemp("feats") / "data", **good_files())
    run_compute_feats(d, FbankConfig(sample_rate=8000, num_mel_bins=23), "cpu")
    return d


def copy_dir(src: Path, dst: Path) -> Path:
    """A copy whose feats.scp points at its own archive (scp paths are absolute here)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".ark" and not f.name.startswith("."):
            (dst / f.name).write_bytes(f.read_bytes())
    write_feats(dst, {u: m for u, m in read_scp_matrices(src / "feats.scp").items()})
    (dst / "cmvn.ark").write_bytes((src / "cmvn.ark").read_bytes())
    (dst / "cmvn.scp").write_text((src / "cmvn.scp").read_text().replace(str(src), str(dst)))
    return dst


def test_nan_features_and_alignment_lengths(tmp_path, feats_dir, capsys, restore_logging):
    d = copy_dir(feats_dir, tmp_path / "data")
    feats = read_scp_matrices(d / "feats.scp")
    u1, u2, u3 = sorted(feats)
    bad = feats[u2].copy()
    bad[[7, 30]] = np.nan
    bad[40, 3] = np.inf
    write_feats(d, {**feats, u2: bad})
    ali = tmp_path / "ali"
    write_int_vectors(ali / "ali.ark", {u1: np.zeros(len(feats[u1]), np.int32),
                                        u3: np.zeros(len(feats[u3]) - 2, np.int32)})
    (ali / "num_pdfs").write_text("2\n")
    exp = [f"{d}/feats.scp:2: utterance '{u2}': 3 of {len(bad)} frames have NaN or Inf (the "
           "first is frame 7, counting from 0)",
           f"{d}/feats.scp:3: utterance '{u3}': {len(feats[u3])} frames of features but "
           f"{len(feats[u3]) - 2} in {ali}/ali.ark"]
    before = snapshot(tmp_path)
    r = validate(d, "--ali-dir", ali)
    assert r.returncode == 1 and problems_in(r.stderr) == exp
    assert snapshot(tmp_path) == before

    # The stages stop at the same problems before writing anything but their log.
    with pytest.raises(DataDirError) as e:
        load_dir_feats(d)
    assert str(e.value) == exp[0]
    write_feats(d, feats)
    assert sorted(load_dir_feats(d)[1]) == [u1, u2, u3]
    for argv in (["train-teachers", d, ali, tmp_path / "exp", "--device", "cpu"],
                 ["decode", "--system", "x", tmp_path / "none.pt", tmp_path / "graph", d,
                  tmp_path / "decode", "--ali-dir", ali, "--device", "cpu"]):
        out = Path(argv[6] if argv[0] == "decode" else argv[3])
        assert main([str(a) for a in argv]) == 1
        assert capsys.readouterr().err.splitlines()[-1] == f"asr-kd {argv[0]}: error: {exp[1]}"
        assert sorted(snapshot(out)) == ["log", f"log/{argv[0]}.log"]


def test_words_missing_from_the_lexicon_stop_the_gmm_stages(tmp_path, feats_dir, lang, capsys,
                                                           restore_logging):
    d = copy_dir(feats_dir, tmp_path / "data")
    lines = (d / "text").read_text().splitlines()
    lines[2] += " MAYBE"
    (d / "text").write_text("\n".join(lines) + "\n")
    msg = (f"{d}/text:3: utterance 's1_{STEMS[2]}': word 'MAYBE' is not in {lang}/words.txt")
    r = validate(d, "--lang", lang)
    assert r.returncode == 1 and problems_in(r.stderr) == [msg]
    assert main(["train-mono", str(d), str(lang), str(tmp_path / "mono"), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"asr-kd train-mono: error: {msg}"
    assert sorted(snapshot(tmp_path / "mono")) == ["log", "log/train-mono.log"]


def test_compute_feats_refuses_or_resamples_another_rate(tmp_path, feats_dir, capsys,
                                                        restore_logging):
    x, _ = read_audio(wav_of(STEMS[1]))
    up = np.clip(np.round(resample(x, 8000, 16000)), -32768, 32767).astype(np.int16)
    sf.write(tmp_path / "16k.wav", up, 16000, subtype="PCM_16")
    files = good_files()
    files["wav_scp"][1] = f"s1_{STEMS[1]} {tmp_path / '16k.wav'}"
    d = write_raw(tmp_path / "data", **files)
    conf = tmp_path / "fbank.yaml"
    conf.write_text("sample_rate: 8000\nnum_mel_bins: 23\n")
    msg = (f"{d}/wav.scp:2: utterance 's1_{STEMS[1]}': audio '{tmp_path / '16k.wav'}': sample "
           "rate 16000 Hz, expected 8000 Hz (resampling is off)")
    r = validate(d, "--sample-rate", 8000)
    assert r.returncode == 1 and problems_in(r.stderr) == [msg]
    assert validate(d, "--sample-rate", 8000, "--resample").returncode == 0
    before = snapshot(d)
    assert main(["compute-feats", str(d), "--config", str(conf), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"asr-kd compute-feats: error: {msg}"
    after = snapshot(d)
    assert sorted(set(after) - set(before)) == ["log", "log/compute-feats.log"]
    assert all(after[k] == v for k, v in before.items())

    assert main(["compute-feats", str(d), "--config", str(conf), "--set", "resample=true",
                 "--device", "cpu"]) == 0
    ours = read_scp_matrices(d / "feats.scp")[f"s1_{STEMS[1]}"]
    ref = read_scp_matrices(feats_dir / "feats.scp")[f"s1_{STEMS[1]}"]
    assert ours.shape == ref.shape
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
