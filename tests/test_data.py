"""Data directories and audio reading, on real yesno recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_kd.data import (
    AudioError,
    DataDirError,
    iter_utterance_audio,
    load_data_dir,
    read_audio,
    write_data_dir,
)

WAVES = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "yesno" / "waves_yesno"
if not WAVES.is_dir():
    pytest.skip(f"yesno corpus not found at {WAVES}", allow_module_level=True)

STEMS = ["0_0_0_0_1_1_1_1", "0_0_0_1_0_0_0_1", "0_0_1_0_0_1_1_0"]
WORDS = {"0": "NO", "1": "YES"}


def wav_of(stem: str) -> str:
    return str(WAVES / f"{stem}.wav")


def write_raw(d: Path, **files: list[str]) -> Path:
    """Write data-dir files verbatim (line order included), so errors have known line numbers."""
    d.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (d / name.replace("_scp", ".scp")).write_text("".join(f"{x}\n" for x in lines))
    return d


def good_files(stems=STEMS, spk="s1") -> dict[str, list[str]]:
    utts = [f"{spk}_{s}" for s in stems]
    return {
        "wav_scp": [f"{u} {wav_of(s)}" for u, s in zip(utts, stems, strict=True)],
        "text": [
            f"{u} " + " ".join(WORDS[c] for c in s.split("_"))
            for u, s in zip(utts, stems, strict=True)
        ],
        "utt2spk": [f"{u} {spk}" for u in utts],
        "spk2utt": [f"{spk} " + " ".join(utts)],
    }


def test_valid_dir_loads_and_roundtrips(tmp_path):
    d = load_data_dir(write_raw(tmp_path / "x", **good_files()))
    assert d.utts == [f"s1_{s}" for s in STEMS]
    assert d.text["s1_0_0_0_1_0_0_0_1"] == ["NO", "NO", "NO", "YES", "NO", "NO", "NO", "YES"]
    assert d.spk2utt == {"s1": d.utts} and d.segments is None
    assert d.recording_of("s1_0_0_0_0_1_1_1_1") == "s1_0_0_0_0_1_1_1_1"

    out = tmp_path / "copy"
    write_data_dir(out, d.wav, d.text, d.utt2spk)
    again = load_data_dir(out)
    assert (again.wav, again.text, again.utt2spk, again.spk2utt) == (
        d.wav,
        d.text,
        d.utt2spk,
        d.spk2utt,
    )
    assert (out / "text").read_text() == (tmp_path / "x" / "text").read_text()


def test_missing_wav_names_file_line_and_utterance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_raw(Path("data/x"), wav_scp=["0_0_0_0 a.wav", "0_0_0_1 b.wav", "0_0_1_0 not/there.wav"])
    for name in ("a.wav", "b.wav"):
        Path(name).symlink_to(wav_of(STEMS[0]))
    with pytest.raises(DataDirError) as e:
        load_data_dir("data/x")
    assert str(e.value) == (
        "data/x/wav.scp:3: utterance '0_0_1_0': audio file 'not/there.wav' does not exist"
    )


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda f: f["text"].__setitem__(1, "s1_0_0_0_1_0_0_0_1"),
            "text:2: utterance 's1_0_0_0_1_0_0_0_1': empty transcript",
        ),
        (
            lambda f: f["text"].append("s1_zz YES"),
            "text:4: utterance 's1_zz': no speaker in utt2spk",
        ),
        (
            lambda f: f.update(
                utt2spk=f["utt2spk"][:2] + ["s1_0_0_1_0_0_1_1_0 s2"],
                spk2utt=["s1 s1_0_0_0_0_1_1_1_1 s1_0_0_0_1_0_0_0_1"],
            ),
            "utt2spk:3: utterance 's1_0_0_1_0_0_1_1_0': speaker 's2' is not in spk2utt",
        ),
        (
            lambda f: f["utt2spk"].insert(1, f["utt2spk"][0]),
            "utt2spk:2: utterance 's1_0_0_0_0_1_1_1_1': duplicate key (first on line 1)",
        ),
        (
            lambda f: f["text"].reverse(),
            "text:2: utterance 's1_0_0_0_1_0_0_0_1': not sorted (keys must be in byte order; "
            "previous key 's1_0_0_1_0_0_1_1_0')",
        ),
        (
            lambda f: f["wav_scp"].__setitem__(0, f"s1_0_0_0_0_1_1_1_1 cat {wav_of(STEMS[0])} |"),
            "wav.scp:1: utterance 's1_0_0_0_0_1_1_1_1': wav.scp entry is a shell pipe; "
            "pass --allow-pipes to run it",
        ),
        (
            lambda f: f["text"].pop(),
            "utt2spk:3: utterance 's1_0_0_1_0_0_1_1_0': no transcript in text",
        ),
        (
            lambda f: f["utt2spk"].__setitem__(0, "s1_0_0_0_0_1_1_1_1 s1 extra"),
            "utt2spk:1: utterance 's1_0_0_0_0_1_1_1_1': expected '<utterance> <speaker>'",
        ),
        (
            lambda f: f["wav_scp"].pop(0),
            "utt2spk:1: utterance 's1_0_0_0_0_1_1_1_1': no recording in wav.scp",
        ),
        (
            lambda f: f["spk2utt"].__setitem__(0, f["spk2utt"][0] + " s1_ghost"),
            "spk2utt:1: speaker 's1': utterance 's1_ghost' is not in utt2spk",
        ),
    ],
)
def test_exact_errors(tmp_path, edit, expected):
    files = good_files()
    edit(files)
    d = write_raw(tmp_path / "x", **files)
    with pytest.raises(DataDirError) as e:
        load_data_dir(d)
    assert str(e.value) == f"{d}/{expected}"


def test_missing_text_file_and_require_text(tmp_path):
    files = good_files()
    del files["text"]
    d = write_raw(tmp_path / "x", **files)
    with pytest.raises(DataDirError, match=r"/x/text: file does not exist$"):
        load_data_dir(d)
    assert load_data_dir(d, require_text=False).text == {}


def test_write_requires_speaker_prefix(tmp_path):
    with pytest.raises(DataDirError, match="utterance 'u1': does not start with its speaker"):
        write_data_dir(tmp_path / "x", {"u1": wav_of(STEMS[0])}, {"u1": "YES"}, {"u1": "global"})


def test_segments_cut_and_validated(tmp_path):
    rec = "spk_rec"
    wav = {rec: wav_of(STEMS[0])}
    segs = {"spk_a": (rec, 0.0, 1.25), "spk_b": (rec, 1.1, 3.3333)}
    write_data_dir(
        tmp_path / "x", wav, {"spk_a": "NO", "spk_b": "YES"}, {"spk_a": "spk", "spk_b": "spk"}, segs
    )
    d = load_data_dir(tmp_path / "x")
    assert d.segments == segs and d.recording_of("spk_b") == rec
    full, sr = read_audio(wav[rec])
    got = {u: (x, r) for u, x, r in iter_utterance_audio(d)}
    assert list(got) == ["spk_a", "spk_b"]
    for utt, (_, start, end) in segs.items():
        x, r = got[utt]
        assert r == sr == 8000
        np.testing.assert_array_equal(x, full[round(start * sr) : round(end * sr)])

    seg_p = tmp_path / "x" / "segments"
    seg_p.write_text(f"spk_a {rec} 0 1.25\nspk_b {rec} 2.0 2.0\n")
    with pytest.raises(DataDirError) as e:
        load_data_dir(tmp_path / "x")
    assert str(e.value) == f"{seg_p}:2: utterance 'spk_b': segment end 2.0 is not after start 2.0"
    seg_p.write_text(f"spk_a {rec} 0 1.25\nspk_b other 1 2\n")
    with pytest.raises(DataDirError) as e:
        load_data_dir(tmp_path / "x")
    assert str(e.value) == f"{seg_p}:2: utterance 'spk_b': recording 'other' is not in wav.scp"
    seg_p.write_text(f"spk_a {rec} 0 1.25\nspk_b {rec} 30 31\n")
    with pytest.raises(
        DataDirError,
        match=r"wav.scp:1: utterance 'spk_b': segment 30.0-31.0 s "
        r"lies beyond the end of recording 'spk_rec'",
    ):
        list(iter_utterance_audio(load_data_dir(tmp_path / "x")))


def test_read_audio_is_int16_scale():
    x, sr = read_audio(wav_of(STEMS[0]))
    ref, _ = sf.read(wav_of(STEMS[0]), dtype="int16")
    assert x.dtype == np.float32 and sr == 8000
    np.testing.assert_array_equal(x, ref.astype(np.float32))
    assert np.abs(x).max() > 100  # not the [-1, 1) float scale


def test_pipe_allowed(tmp_path):
    files = good_files()
    files["wav_scp"][1] = f"s1_{STEMS[1]} cat {wav_of(STEMS[1])} |"
    d = load_data_dir(write_raw(tmp_path / "x", **files), allow_pipes=True)
    got = {u: x for u, x, _ in iter_utterance_audio(d, allow_pipes=True)}
    np.testing.assert_array_equal(got[f"s1_{STEMS[1]}"], read_audio(wav_of(STEMS[1]))[0])
    with pytest.raises(
        DataDirError,
        match=r"wav.scp:2: utterance 's1_0_0_0_1_0_0_0_1': .*shell "
        r"pipe; pass --allow-pipes",
    ):
        list(iter_utterance_audio(d))
    with pytest.raises(AudioError, match="command exited with status 1"):
        read_audio("cat /nonexistent/x.wav |", allow_pipes=True)


def test_truncated_stereo_empty_and_garbage_audio(tmp_path):
    src = Path(wav_of(STEMS[0])).read_bytes()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(src[: len(src) // 2])
    with pytest.raises(AudioError) as e:
        read_audio(str(trunc))
    assert str(e.value).startswith(f"audio '{trunc}': truncated: header declares 101600 bytes")

    x, sr = read_audio(wav_of(STEMS[0]))
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([x, x], 1).astype(np.int16), sr, subtype="PCM_16")
    with pytest.raises(AudioError) as e:
        read_audio(str(stereo))
    assert str(e.value) == f"audio '{stereo}': has 2 channels; expected mono"

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.int16), sr, subtype="PCM_16")
    with pytest.raises(AudioError, match="contains no samples"):
        read_audio(str(empty))

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=rf"audio '{garbage}': cannot read: \S"):
        read_audio(str(garbage))

    # Through a data dir the error also names the wav.scp line and the utterance.
    files = good_files()
    files["wav_scp"][2] = f"s1_{STEMS[2]} {stereo}"
    d = load_data_dir(write_raw(tmp_path / "x", **files))
    with pytest.raises(DataDirError) as e:
        list(iter_utterance_audio(d))
    assert str(e.value) == (
        f"{tmp_path}/x/wav.scp:3: utterance 's1_{STEMS[2]}': "
        f"audio '{stereo}': has 2 channels; expected mono"
    )
