"""local/transfer.py on the real shared corpora: the transfer sets of the an4, librispeech_subset
and fsdd recipes, untranscribed, checked against each recipe's own data dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from asr_kd.data import load_data_dir, write_data_dir
from local import an4, fsdd, librispeech, transfer
from tests.conftest import REPO, corpus

# source: (prefix, audio files on disk, speakers, minutes as SOURCE.md gives them)
EXPECTED = {
    "librispeech_subset": ("lss", lambda: corpus("librispeech_subset").rglob("*.flac"), 24, 63.0),
    "librispeech_dev_clean": ("lsdc", lambda: corpus("librispeech_dev_clean").rglob("*.mp3"), 14,
                              113.8),
    "an4": ("an4", lambda: (corpus("an4") / "wav").rglob("*.wav"), 74 + 10, 42.4 + 6.0),
}


def check_transfer_dir(d: Path, source: str, own: dict[str, Path]) -> None:
    """`d` lists every audio file of `source` once, untranscribed, its ids prefixed, and shares
    nothing with the recipe's own data dirs `own`."""
    prefix, audio, n_spk, minutes = EXPECTED[source]
    files = {str(p.resolve()) for p in audio()}
    assert not (d / "text").exists() and (d / ".done").exists()
    dd = load_data_dir(d, require_text=False)  # sorted, utt2spk and spk2utt consistent
    assert len(dd.utts) == len(files) and set(dd.wav.values()) == files
    assert all(Path(w).is_absolute() and Path(w).is_file() for w in dd.wav.values())
    assert len(dd.spk2utt) == n_spk
    for utt, spk in dd.utt2spk.items():
        assert spk.startswith(f"{prefix}-") and utt.startswith(f"{spk}-")
        assert utt in dd.spk2utt[spk]
        assert Path(dd.wav[utt]).stem in utt  # the source's own id, after the prefix
    assert sum(len(u) for u in dd.spk2utt.values()) == len(dd.utts)
    spks = [dd.utt2spk[u] for u in dd.utts]
    assert spks == sorted(spks)  # Kaldi: utterances grouped by speaker, in speaker order
    dur = dict(ln.split() for ln in (d / "utt2dur").read_text().splitlines())
    assert sorted(dur) == dd.utts
    assert sum(map(float, dur.values())) / 60 == pytest.approx(minutes, abs=0.06)
    first = dd.utts[0]
    assert float(dur[first]) == sf.info(dd.wav[first]).duration
    for name, path in own.items():
        mine = load_data_dir(path)
        assert not set(mine.wav.values()) & files, name
        assert not {Path(w).stem for w in mine.wav.values()} & {Path(f).stem for f in files}
        assert not set(mine.spk2utt) & {s.split("-", 1)[1] for s in dd.spk2utt}, name
        assert not set(mine.utt2spk) & set(dd.utt2spk), name


@pytest.fixture(scope="module")
def an4_recipe(tmp_path_factory):
    data = tmp_path_factory.mktemp("an4") / "data"
    paths = an4.prepare_an4(corpus("an4"), data)
    lines = transfer.write_transfer_sets(data, "an4", ["librispeech_subset",
                                                       "librispeech_dev_clean"])
    return data, {k: paths[k] for k in ("train", "test")}, lines


def test_an4_transfer_sets(an4_recipe):
    data, own, lines = an4_recipe
    assert sorted(p.name for p in data.iterdir()) == [
        "local", "test", "train", "transfer_librispeech_dev_clean", "transfer_librispeech_subset"]
    for source in ("librispeech_subset", "librispeech_dev_clean"):
        check_transfer_dir(data / f"transfer_{source}", source, own)
    d = load_data_dir(data / "transfer_librispeech_dev_clean", require_text=False)
    assert d.wav["lsdc-174-50561-0000"] == str(
        corpus("librispeech_dev_clean").resolve() / "dev-clean/174/50561/174-50561-0000.mp3")
    assert lines == [
        f"{data}/transfer_librispeech_subset: 297 utterances, 24 speakers, 1.05 h (63.0 min), "
        f"from librispeech_subset {corpus('librispeech_subset').resolve()}",
        f"{data}/transfer_librispeech_dev_clean: 817 utterances, 14 speakers, 1.90 h "
        f"(113.8 min), from librispeech_dev_clean {corpus('librispeech_dev_clean').resolve()}"]


def test_librispeech_subset_transfer_an4(tmp_path):
    data = tmp_path / "data"
    paths = librispeech.prepare_librispeech(corpus("librispeech_subset"), data,
                                            split_by_speaker=True)
    (line,) = transfer.write_transfer_sets(data, "librispeech", ["an4"])
    assert line.startswith(f"{data}/transfer_an4: 1078 utterances, 84 speakers, 0.81 h")
    check_transfer_dir(data / "transfer_an4", "an4", {k: paths[k] for k in ("train", "dev",
                                                                             "test")})
    d = load_data_dir(data / "transfer_an4", require_text=False)
    assert d.utt2spk["an4-fash-an251-fash-b"] == "an4-fash"  # train
    assert d.utt2spk["an4-fcaw-an406-fcaw-b"] == "an4-fcaw"  # test: all of AN4 is transfer here
    assert set(load_data_dir(paths["test"]).spk2utt) == {"32", "332"}


def test_fsdd_cli_transfer_skip_and_force(tmp_path):
    """As run.sh runs it: `python -m local.fsdd transfer` in the recipe dir, after prepare."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "local.fsdd", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)

    out = cli("transfer")  # before prepare: nothing to check it against
    assert out.returncode == 1 and "run `prepare` first" in out.stderr
    assert not (tmp_path / "data" / "transfer_an4").exists()
    paths = fsdd.prepare_fsdd(corpus("fsdd"), tmp_path / "data")
    out = cli("transfer")
    assert out.returncode == 0, out.stderr
    d = tmp_path / "data" / "transfer_an4"
    assert out.stdout == (f"data/transfer_an4: 1078 utterances, 84 speakers, 0.81 h (48.4 min), "
                          f"from an4 {corpus('an4').resolve()}\n")
    check_transfer_dir(d, "an4", {k: paths[k] for k in ("train", "test", "test_unseen")})

    (d / "feats.scp").write_text("left by a later stage\n")
    mtime = (d / "wav.scp").stat().st_mtime_ns
    out = cli("transfer")  # done: skipped, the same summary
    assert out.returncode == 0
    assert out.stdout.endswith(f"(48.4 min), from an4 {corpus('an4').resolve()} (already done)\n")
    assert (d / "feats.scp").exists() and (d / "wav.scp").stat().st_mtime_ns == mtime
    out = cli("transfer", "--force")  # redone whole: what later stages wrote goes with the old
    assert out.returncode == 0 and "already done" not in out.stdout
    assert not (d / "feats.scp").exists()
    assert sorted(p.name for p in d.parent.iterdir()) == [
        "local", "test", "test_unseen", "train", "transfer_an4"]  # no temporary dirs left
    check_transfer_dir(d, "an4", {k: paths[k] for k in ("train", "test", "test_unseen")})

    out = cli("transfer", "--sources", "fsdd")
    assert out.returncode == 2 and "invalid choice: 'fsdd'" in out.stderr


def test_refuses_own_corpus_and_overlap(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(ValueError, match="transfer source an4 is an4 audio, the recipe's own"):
        transfer.write_transfer_sets(data, "an4", ["an4"])
    with pytest.raises(ValueError, match="librispeech_dev_clean is librispeech audio"):
        transfer.write_transfer_sets(data, "librispeech", ["an4", "librispeech_dev_clean"])
    with pytest.raises(ValueError, match="unknown transfer source 'timit'"):
        transfer.write_transfer_sets(data, "fsdd", ["timit"])

    # A recipe whose test set holds an AN4 recording (as an4's own would): transfer_an4 refused.
    wav = corpus("an4").resolve() / "wav/an4test_clstk/fcaw/an406-fcaw-b.wav"
    write_data_dir(data / "test", {"fcaw-x": str(wav)}, {"fcaw-x": ["A"]}, {"fcaw-x": "fcaw"})
    with pytest.raises(ValueError) as e:
        transfer.write_transfer_sets(data, "fsdd", ["an4"])
    assert str(e.value).startswith(
        f"transfer set an4 shares with {data / 'test'}: audio {wav} (an406-fcaw-b), audio file "
        f"name an406-fcaw-b.wav (an406-fcaw-b), speaker fcaw; nothing written")
    assert not (data / "transfer_an4").exists()

    # The same utterance copied elsewhere is caught by its file name; a speaker id by itself.
    copy = tmp_path / "copy" / "an406-fcaw-b.wav"
    copy.parent.mkdir()
    copy.write_bytes(wav.read_bytes())
    write_data_dir(data / "test", {"x-1": str(copy)}, {"x-1": ["A"]}, {"x-1": "x"})
    with pytest.raises(ValueError, match=r"audio file name an406-fcaw-b\.wav \(an406-fcaw-b\);"):
        transfer.write_transfer_sets(data, "fsdd", ["an4"])
    write_data_dir(data / "test", {"mblb-1": str(copy.with_name("other.wav"))}, {"mblb-1": ["A"]},
                   {"mblb-1": "mblb"})
    copy.rename(copy.with_name("other.wav"))
    with pytest.raises(ValueError, match=r"shares with .*: speaker mblb; nothing written"):
        transfer.write_transfer_sets(data, "fsdd", ["an4"])
    assert sorted(p.name for p in data.iterdir()) == ["test"]
