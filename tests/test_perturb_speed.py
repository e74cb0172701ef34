"""`asr-kd perturb-speed`: the copies' ids and files, and their audio read at the new speed
(pitch and length of a pure tone against the closed form, features of real yesno audio, sox)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.cli import main
from asr_kd.data import (
    DataDirError,
    iter_utterance_audio,
    load_data_dir,
    perturb_speed,
    read_audio,
    validate_data_dir,
    write_data_dir,
)
from asr_kd.data.fix import drop_bad
from asr_kd.data.perturb import check_factors
from asr_kd.features import read_scp_matrices
from tests.conftest import corpus

SR = 16000


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


def tone(path: Path, freqs: list[float], seconds_each: float = 1.0) -> Path:
    """16-bit WAV of pure tones one after the other, each `seconds_each` long."""
    t = np.arange(round(seconds_each * SR)) / SR
    x = np.concatenate([0.5 * 32767 * np.sin(2 * np.pi * f * t) for f in freqs])
    sf.write(path, x.astype(np.int16), SR, subtype="PCM_16")
    return path


def peak_hz(x: np.ndarray, sr: int) -> float:
    """The frequency of the largest FFT bin (Hann window); resolution sr/len(x)."""
    return float(np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * sr / len(x))


def audio_of(d) -> dict[str, tuple[np.ndarray, int]]:
    return {u: (x, sr) for u, x, sr in iter_utterance_audio(load_data_dir(d))}


def test_a_tone_changes_pitch_and_length_by_the_factor(tmp_path):
    wav = tone(tmp_path / "a440.wav", [440.0], 2.0)
    write_data_dir(tmp_path / "src", {"s1_a": str(wav)}, {"s1_a": "A"}, {"s1_a": "s1"})
    perturb_speed(tmp_path / "src", tmp_path / "sp", [0.9, 1.1])
    assert (tmp_path / "sp" / "reco2speed").read_text() == "sp0.9-s1_a 0.9\nsp1.1-s1_a 1.1\n"
    got = audio_of(tmp_path / "sp")
    n = 2 * SR
    assert sorted(got) == ["s1_a", "sp0.9-s1_a", "sp1.1-s1_a"]
    assert np.array_equal(got["s1_a"][0], read_audio(str(wav))[0])  # the original, unchanged
    for f in (0.9, 1.1):
        x, sr = got[f"sp{f:g}-s1_a"]
        assert sr == SR
        assert abs(len(x) - n / f) <= 2
        # sox `speed`: the pitch moves by f (a plain rate change would keep 440 Hz)
        assert abs(peak_hz(x, sr) - 440 * f) <= sr / len(x)


def test_segments_are_times_on_the_perturbed_axis(tmp_path):
    """440 Hz for a second, then 880 Hz: the second segment of a copy, at its perturbed times,
    holds only the 880 Hz tone, moved to 880*f, and lasts 1/f seconds."""
    wav = tone(tmp_path / "two.wav", [440.0, 880.0])
    src = tmp_path / "src"
    write_data_dir(src, {"r1": str(wav)}, {"s1_lo": "LO", "s1_hi": "HI"},
                   {"s1_lo": "s1", "s1_hi": "s1"},
                   {"s1_lo": ("r1", 0.0, 1.0), "s1_hi": ("r1", 1.0, 2.0)})
    (src / "reco2dur").write_text("r1 2.0\n")
    (src / "utt2dur").write_text("s1_hi 1.0\ns1_lo 1.0\n")
    d = perturb_speed(src, tmp_path / "sp", [0.9])
    assert d.segments["sp0.9-s1_hi"] == ("sp0.9-r1", 1.0 / 0.9, 2.0 / 0.9)
    assert d.segments["s1_hi"] == ("r1", 1.0, 2.0)
    assert (tmp_path / "sp" / "reco2dur").read_text() == "r1 2.0\nsp0.9-r1 2.222222\n"
    assert (tmp_path / "sp" / "utt2dur").read_text() == (
        "s1_hi 1.0\ns1_lo 1.0\nsp0.9-s1_hi 1.111111\nsp0.9-s1_lo 1.111111\n")
    got = audio_of(tmp_path / "sp")
    for utt, hz in (("sp0.9-s1_lo", 440), ("sp0.9-s1_hi", 880), ("s1_hi", 880)):
        x, sr = got[utt]
        f = 0.9 if utt.startswith("sp") else 1.0
        assert abs(len(x) - SR / f) <= 2, utt
        assert abs(peak_hz(x, sr) - hz * f) <= sr / len(x), utt

    # A perturbed dir perturbed again: the speeds multiply.
    d2 = perturb_speed(tmp_path / "sp", tmp_path / "sp2", [1.1])
    assert d2.reco2speed["sp1.1-sp0.9-r1"] == pytest.approx(0.99)
    assert d2.reco2speed["sp0.9-r1"] == 0.9 and "r1" not in d2.reco2speed


def yesno_dir(root: Path) -> Path:
    """Three real yesno recordings of two speakers, with utt2dur and spk2gender."""
    waves = corpus("yesno") / "waves_yesno"
    stems = sorted(p.stem for p in waves.glob("*.wav"))[:3]
    spk = {stems[0]: "a", stems[1]: "a", stems[2]: "b"}
    utts = {f"{spk[s]}_{s}": s for s in stems}
    words = {"0": "NO", "1": "YES"}
    d = root / "src"
    write_data_dir(d, {u: str(waves / f"{s}.wav") for u, s in utts.items()},
                   {u: " ".join(words[c] for c in s.split("_")) for u, s in utts.items()},
                   {u: u.split("_")[0] for u in utts})
    (d / "utt2dur").write_text("".join(f"{u} {sf.info(str(waves / f'{s}.wav')).duration}\n"
                                       for u, s in sorted(utts.items())))
    (d / "spk2gender").write_text("a m\nb f\n")
    return d


def test_cli_on_yesno_then_features(tmp_path, capsys, restore_logging):
    src, out = yesno_dir(tmp_path), tmp_path / "sp"
    assert main(["perturb-speed", str(src), str(out), "--factors", "0.9", "1.1"]) == 0
    s, d = load_data_dir(src), load_data_dir(out)
    assert d.utts == sorted([*s.utts, *(f"sp{f}-{u}" for f in ("0.9", "1.1") for u in s.utts)])
    for u in s.utts:
        spk = s.utt2spk[u]
        for p in ("", "sp0.9-", "sp1.1-"):
            assert d.text[p + u] == s.text[u]
            assert d.utt2spk[p + u] == p + spk
            assert d.wav[p + u] == s.wav[u]  # the same audio, read at another speed
            assert p + u in d.spk2utt[p + spk]
    assert d.spk2utt["sp0.9-a"] == [f"sp0.9-{u}" for u in s.spk2utt["a"]]
    assert d.reco2speed == {**{f"sp0.9-{u}": 0.9 for u in s.utts},
                            **{f"sp1.1-{u}": 1.1 for u in s.utts}}
    assert (out / "spk2gender").read_text().splitlines() == [
        "a m", "b f", "sp0.9-a m", "sp0.9-b f", "sp1.1-a m", "sp1.1-b f"]
    dur = dict(ln.split() for ln in (out / "utt2dur").read_text().splitlines())
    for u in s.utts:
        assert float(dur[f"sp0.9-{u}"]) == pytest.approx(float(dur[u]) / 0.9, abs=1e-6)
    uniq = dict(ln.split() for ln in (out / "utt2uniq").read_text().splitlines())
    assert uniq == {u: u.split("-", 1)[-1] for u in d.utts}
    # The originals' lines are the source's (Kaldi byte order keeps them together).
    for name in ("wav.scp", "text", "utt2spk", "utt2dur"):
        lines = (out / name).read_text().splitlines()
        assert [ln for ln in lines if not ln.startswith("sp")] == \
            (src / name).read_text().splitlines()
    assert main(["perturb-speed", str(src), str(out)]) == 0  # done: skipped
    assert "is done; skipping" in capsys.readouterr().out

    conf = tmp_path / "fbank.yaml"
    conf.write_text("sample_rate: 8000\nnum_mel_bins: 23\n")
    for data in (src, out):
        assert main(["compute-feats", str(data), "--config", str(conf), "--device", "cpu"]) == 0
    ref, feats = read_scp_matrices(src / "feats.scp"), read_scp_matrices(out / "feats.scp")
    assert sorted(feats) == d.utts
    for u in s.utts:
        n = len(ref[u])
        assert np.array_equal(feats[u], ref[u])
        for f in (0.9, 1.1):
            assert abs(len(feats[f"sp{f:g}-{u}"]) - round(n / f)) <= 2, (u, f)
    assert validate_data_dir(out, sample_rate=8000).problems == []


@pytest.mark.parametrize("line, problem", [
    ("sp1.1-s1_a fast", "speed 'fast' is not a number"),
    ("sp1.1-s1_a 0", "speed 0 is not a positive number"),
    ("sp1.1-s1_a -1.1", "speed -1.1 is not a positive number"),
    ("sp1.1-s1_a nan", "speed nan is not a positive number"),
    ("sp1.1-s1_a 1.1 1.2", "expected '<recording> <speed factor>'"),
    ("sp1.1-s1_a", "expected at least 2 fields, got 1"),
])
def test_a_bad_reco2speed_line_is_named(tmp_path, line, problem):
    wav = tone(tmp_path / "a440.wav", [440.0])
    write_data_dir(tmp_path / "src", {"s1_a": str(wav)}, {"s1_a": "A"}, {"s1_a": "s1"})
    out = tmp_path / "sp"
    perturb_speed(tmp_path / "src", out, [0.9, 1.1])
    (out / "reco2speed").write_text(f"sp0.9-s1_a 0.9\n{line}\n")
    with pytest.raises(DataDirError) as e:
        load_data_dir(out)
    assert str(e.value) == f"{out}/reco2speed:2: utterance 'sp1.1-s1_a': {problem}"

    # validate-data reports it with the rest; --drop-bad drops that recording's utterances.
    v = validate_data_dir(out)
    assert [str(p) for p in v.problems] == [str(e.value)]
    _, kept, dropped = drop_bad(v)
    assert kept == ["s1_a", "sp0.9-s1_a"] and list(dropped) == ["sp1.1-s1_a"]
    assert (out / "reco2speed").read_text() == "sp0.9-s1_a 0.9\n"
    assert load_data_dir(out).reco2speed == {"sp0.9-s1_a": 0.9}


def test_a_speed_for_no_recording_is_named(tmp_path):
    wav = tone(tmp_path / "a440.wav", [440.0])
    d = tmp_path / "src"
    write_data_dir(d, {"s1_a": str(wav)}, {"s1_a": "A"}, {"s1_a": "s1"})
    (d / "reco2speed").write_text("s1_b 0.9\n")
    with pytest.raises(DataDirError, match=r"reco2speed:1: utterance 's1_b': recording is not "
                                           r"in wav.scp$"):
        load_data_dir(d)


def test_factors(tmp_path, capsys, restore_logging):
    assert check_factors([1.1, 0.9, 1.0, 0.9]) == [0.9, 1.1]
    for bad, shown in ((0, "0"), (-0.9, "-0.9"), (float("nan"), "nan"), (float("inf"), "inf")):
        with pytest.raises(ValueError, match=f"^speed factor {shown} is not a positive number$"):
            check_factors([0.9, bad])
    with pytest.raises(ValueError, match="would both be named 'sp0.9-'"):
        check_factors([0.9, 0.9000001])

    wav = tone(tmp_path / "a440.wav", [440.0])
    src = tmp_path / "src"
    write_data_dir(src, {"s1_a": str(wav)}, {"s1_a": "A"}, {"s1_a": "s1"})
    d = perturb_speed(src, tmp_path / "sp", [1.0, 0.9])  # 1 is the originals, not a copy
    assert d.utts == ["s1_a", "sp0.9-s1_a"]
    assert main(["perturb-speed", str(src), str(tmp_path / "copies"), "--factors", "1.2", "0.8",
                 "--copies-only"]) == 0  # a transfer set: its originals are labelled already
    assert capsys.readouterr().out.strip().endswith(": 2 utterances, 2 speakers, speeds 0.8 1.2")
    d = load_data_dir(tmp_path / "copies")
    assert d.utts == ["sp0.8-s1_a", "sp1.2-s1_a"] and d.reco2speed == {
        "sp0.8-s1_a": 0.8, "sp1.2-s1_a": 1.2}

    out = tmp_path / "bad"
    assert main(["perturb-speed", str(src), str(out), "--factors", "0.9", "-1"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == "asr-kd perturb-speed: error: speed factor -1 is not a positive number"
    assert sorted(p.name for p in out.iterdir()) == ["log"]  # nothing but the log
    with pytest.raises(ValueError, match="must not be the source dir"):
        perturb_speed(src, src, [0.9])


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_same_samples_as_sox_speed(tmp_path):
    wav = sorted((corpus("yesno") / "waves_yesno").glob("*.wav"))[0]
    write_data_dir(tmp_path / "src", {"s1_a": str(wav)}, {"s1_a": "A"}, {"s1_a": "s1"})
    perturb_speed(tmp_path / "src", tmp_path / "sp", [0.9, 1.1])
    got = audio_of(tmp_path / "sp")
    for f in (0.9, 1.1):
        ref_p = tmp_path / f"sox_{f}.wav"
        subprocess.run(["sox", str(wav), str(ref_p), "speed", str(f)], check=True)
        ref, _ = read_audio(str(ref_p))
        ours, _ = got[f"sp{f:g}-s1_a"]
        assert abs(len(ours) - len(ref)) <= 2
        n = min(len(ours), len(ref))
        assert np.corrcoef(ours[:n], ref[:n])[0, 1] > 0.99


def test_speed_copies_follow_their_utterance_into_train_or_valid():
    """A held-out utterance's sp0.9-/sp1.1- copies in training would leak it into validation."""
    from asr_kd.train.trainer import TrainConfig, split_utts

    base = [f"spk{i % 7}-u{i:03d}" for i in range(60)]  # "spk": not a speed prefix
    utts = base + [f"sp{f}-{u}" for f in ("0.9", "1.1") for u in base]
    cfg = TrainConfig(valid_fraction=0.2, seed=3)
    train, valid = split_utts(utts, cfg)
    origin = {u: u.split("-", 1)[1] if u.startswith(("sp0", "sp1")) else u for u in utts}
    assert {origin[u] for u in train}.isdisjoint({origin[u] for u in valid})
    assert len(valid) == 3 * 12 and len(train) == 3 * 48
    # Without copies the split is the one the copies' originals get.
    plain_train, plain_valid = split_utts(base, cfg)
    assert plain_valid == sorted(u for u in valid if not u.startswith(("sp0", "sp1")))
    assert plain_train == sorted(u for u in train if not u.startswith(("sp0", "sp1")))
    # split_seed fixes the split whatever the seed (a student validating on its teachers'
    # held-out utterances).
    assert split_utts(utts, TrainConfig(valid_fraction=0.2, seed=9, split_seed=3)) == \
        (train, valid)
    assert split_utts(utts, TrainConfig(valid_fraction=0.2, seed=9))[1] != valid
