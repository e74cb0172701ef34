"""local/librispeech.py on the real hour of LibriSpeech in ../shared/corpora: the speaker split,
CMUdict lexicon with <UNK>, the LM text rule, and errors that name the file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from asr_kd.data import load_data_dir
from local.librispeech import UNK, prepare_librispeech, read_other_text
from tests.conftest import REPO, corpus


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    src = corpus("librispeech_subset")
    out = tmp_path_factory.mktemp("ls") / "data"
    return src, out, prepare_librispeech(src, out)


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
    # BROWNIE'S is not in CMUdict: <UNK> in the reference too, pronounced SPN
    assert test.text["32-21631-0002"][7:10] == ["BROWNIE", UNK, "LIFE"]
    lexicon = (paths["dict"] / "lexicon.txt").read_text().splitlines()
    assert lexicon[0] == f"{UNK} SPN"
    assert "BROWNIE B R AW N IY" in lexicon
    assert (paths["dict"] / "silence_phones.txt").read_text().split() == ["SIL", "SPN"]
    # the LM never saw a dev or test speaker's sentence: a word only they use is outside it
    arpa = paths["lm"].read_text()
    unigrams = {ln.split()[1] for ln in arpa.split("\\1-grams:")[1].split("\\2-grams:")[0]
                .splitlines() if ln.strip()}
    held_out = {w for u, ws in read_other_text(src) if u.split("-")[0] in ("32", "332")
                for w in ws}
    train_words = {w for ws in load_data_dir(paths["train"]).text.values() for w in ws}
    assert held_out - train_words - unigrams  # such words exist and stay out
    assert "BROWNIE" in held_out and "BROWNIE" not in unigrams


def test_rerun_skips_and_errors(prepared, tmp_path, capsys):
    src, out, _ = prepared
    prepare_librispeech(src, out)
    assert "already prepared" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--lm-text must be one of train, train\\+other"):
        prepare_librispeech(src, tmp_path / "x", lm_text="all")
    # a transcript line whose audio is missing names the file, the line and the utterance
    bad = tmp_path / "bad"
    chapter = bad / "train-clean-5" / "32" / "21631"
    chapter.mkdir(parents=True)
    shutil.copy(src / "SPEAKERS.TXT", bad / "SPEAKERS.TXT")
    (chapter / "32-21631.trans.txt").write_text("32-21631-0000 HELLO\n32-21631-0099 WORLD\n")
    shutil.copy(src / "train-clean-5/32/21631/32-21631-0000.flac", chapter)
    with pytest.raises(ValueError, match=r"32-21631\.trans\.txt:2: utterance '32-21631-0099': "
                                         r"audio file .*32-21631-0099\.flac does not exist"):
        prepare_librispeech(bad, tmp_path / "y")


def test_cli_runs_by_path(tmp_path):
    src = corpus("librispeech_subset")
    proc = subprocess.run([sys.executable, str(REPO / "local" / "librispeech.py"), "download",
                           "--dest", str(tmp_path / "corpus")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(src.resolve())
    proc = subprocess.run([sys.executable, str(REPO / "local" / "librispeech.py"), "download",
                           "--corpus-dir", str(tmp_path / "none"), "--dest", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no LibriSpeech copy" in proc.stderr
