"""The yesno corpus (OpenSLR resource 1): download and Kaldi-style data preparation.

60 WAV files of one male speaker saying eight yes/no words each, 8 kHz mono 16-bit, 6.1 minutes
in all. There is no transcript file: each file name is its transcript, `0_1_0_0_1_0_1_1.wav`
being the eight words in order with 1 = YES and 0 = NO. Kaldi's egs/yesno/s5 trains on the 31
files whose names start with `0_` and tests on the 29 starting with `1_`.

Usage (from the repository root; run.sh: `local_py yesno ...`, see local/cli.py):
    python -m local.yesno download --dest corpus          # prints the corpus dir to use
    python -m local.yesno prepare --corpus-dir DIR --data-dir data

`download` uses an existing copy when there is one (`--corpus-dir`, else the shared copy beside
the repository) and only otherwise fetches the archive, checksum-verified.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.utils.archive import download, safe_extract
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text
from local.cli import Corpus
from local.common import logger

YESNO_URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
# sha256 of OpenSLR resource 1, as torchaudio.datasets.YESNO verifies it.
YESNO_SHA256: str | None = "c3f49e0cca421f96b75b41640749167b52118f232498667ca7a5f9416aef8e73"
# The shared, read-only copy of the corpus next to the checkout (<repo>/../shared/...).
SHARED_CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "yesno"

SPEAKER = "yesno"
WORDS = {"0": "NO", "1": "YES"}
_STEM = re.compile(r"^[01](?:_[01])*$")

_log = logger("yesno")


def _has_waves(corpus_dir: Path) -> bool:
    return any((corpus_dir / "waves_yesno").glob("*.wav"))


def download_yesno(
    target_dir,
    corpus_dir=None,
    url: str = YESNO_URL,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Return a directory holding `waves_yesno/*.wav`, downloading into `target_dir` if needed.

    An existing copy (`corpus_dir`, or the shared copy when `corpus_dir` is None) is used in
    place. Otherwise the archive is fetched, verified, extracted safely and marked with
    `.completed`; a failure leaves `target_dir` as it was.
    """
    target = Path(target_dir)
    existing = Path(corpus_dir) if corpus_dir is not None else SHARED_CORPUS_DIR
    if _has_waves(existing):
        _log(f"using existing corpus at {existing.resolve()} (not copied)")
        return existing.resolve()
    if corpus_dir is not None:
        _log(f"no waves_yesno/*.wav under {existing}; downloading instead")
    if (target / ".completed").exists() and _has_waves(target) and not force:
        _log(f"{target} already complete; skipping download")
        return target.resolve()
    sha = sha256 or YESNO_SHA256
    if not sha:
        raise ValueError(f"{url}: no sha256 known for the yesno archive; pass --sha256")

    created = not target.exists()
    archive = target / Path(url.split("?")[0]).name
    try:
        _log(f"downloading {url}")
        download(url, archive, sha, progress=progress)
        safe_extract(archive, target)
        if not _has_waves(target):
            raise ValueError(f"{archive}: archive has no waves_yesno/*.wav")
        write_text(target / ".completed", "")
    except BaseException:
        # A checksum or extraction failure must not leave an archive that looks usable.
        if archive.exists():
            archive.unlink()
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        raise
    return target.resolve()


def _transcript(stem: str) -> list[str]:
    return [WORDS[d] for d in stem.split("_")]


def _write_set(out: Path, wavs: list[Path]) -> list[list[str]]:
    wav, text, utt2spk = {}, {}, {}
    for w in wavs:
        utt = f"{SPEAKER}_{w.stem}"  # Kaldi: utterance ids start with the speaker id
        wav[utt] = str(w.resolve())
        text[utt] = _transcript(w.stem)
        utt2spk[utt] = SPEAKER
    write_data_dir(out, wav, text, utt2spk)
    return list(text.values())


# Kaldi's egs/yesno/s5/input/task.arpabo: YES, NO and </s> each at log10 p = -1. The
# probabilities do not sum to one; against a count-based unigram (YES 0.41, NO 0.48) the extra
# cost per word works as a word insertion penalty, and on this test set the GMM's insertions
# need it (2 -> 1 errors, see docs/yesno.md).
KALDI_YESNO_ARPA = """\\data\\
ngram 1=4

\\1-grams:
-1\tNO
-1\tYES
-99\t<s>
-1\t</s>

\\end\\
"""


def prepare_yesno(corpus_dir, output_dir, force: bool = False) -> dict[str, Path]:
    """Write `train_yesno`, `test_yesno`, `local/dict` and `local/lm.arpa` under `output_dir`.

    Both data dirs are validated with `load_data_dir` before any `.done` marker is written;
    a rerun with all markers present does nothing unless `force`.
    """
    corpus_dir, out = Path(corpus_dir), Path(output_dir)
    paths = {
        "train": out / "train_yesno",
        "test": out / "test_yesno",
        "dict": out / "local" / "dict",
        "lm": out / "local" / "lm.arpa",
    }
    stages = [paths["train"], paths["test"], paths["dict"], out / "local"]
    if not force and all(is_done(d) for d in stages):
        _log(f"{out} already prepared; skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)

    wavs = sorted((corpus_dir / "waves_yesno").glob("*.wav"))
    for w in wavs:
        if not _STEM.match(w.stem):
            raise ValueError(f"{w}: file name is not a yes/no transcript like 0_1_1_0")
    train = [w for w in wavs if w.stem.startswith("0_")]
    test = [w for w in wavs if w.stem.startswith("1_")]
    if not train or not test:
        raise ValueError(
            f"{corpus_dir / 'waves_yesno'}: expected files starting with 0_ "
            f"(train) and 1_ (test); found {len(train)} and {len(test)}"
        )

    _write_set(paths["train"], train)
    _write_set(paths["test"], test)

    d = paths["dict"]
    write_lines(d / "lexicon.txt", ["<SIL> SIL", "NO N", "YES Y"])
    write_lines(d / "silence_phones.txt", ["SIL"])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt", ["Y", "N"])
    write_lines(d / "extra_questions.txt", [])
    write_text(paths["lm"], KALDI_YESNO_ARPA)

    for key in ("train", "test"):
        load_data_dir(paths[key])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    _log(f"prepared {len(train)} train and {len(test)} test utterances under {out}")
    return paths


CLI = Corpus("yesno", __doc__, download_yesno, prepare_yesno, holds="waves_yesno/", url=YESNO_URL)
main = CLI.main

if __name__ == "__main__":
    CLI.run()
