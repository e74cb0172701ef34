"""local/an4.py on the real CMU AN4 corpus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from asr_kd.data import load_data_dir
from asr_kd.lang.ngram import train_kneser_ney
from tests.conftest import REPO, corpus

if str(REPO) not in sys.path:  # `local` is a plain directory of the checkout, not installed
    sys.path.insert(0, str(REPO))
from local import an4  # noqa: E402


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


def test_cli_runs_by_path(tmp_path):
    script = REPO / "local" / "an4.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(script), "download"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(corpus("an4").resolve())
    proc = subprocess.run([sys.executable, str(script), "download", "--corpus-dir",
                           str(tmp_path / "none"), "--dest", str(tmp_path / "c")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == (
        f"error: no AN4 corpus (etc/an4_train.fileids and wav/) at {tmp_path / 'none'} or "
        f"{tmp_path / 'c'}; downloading AN4 is not supported yet: pass --corpus-dir\n")
    subprocess.run([sys.executable, str(script), "prepare", "--corpus-dir", out.stdout.strip(),
                    "--lm-order", "1"], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert len(load_data_dir(tmp_path / "data" / "train").utts) == 948
