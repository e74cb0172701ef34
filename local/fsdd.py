"""The Free Spoken Digit Dataset (FSDD): download and Kaldi-style data preparation.

Isolated English digits, 8 kHz mono 16-bit, `recordings/{digit}_{speaker}_{index}.wav`, 50 takes
of each digit per speaker (the shared copy has 4 speakers, 2000 files). `--split`:

- `both` (the default): the speakers other than `--test-speaker` (theo) train on takes 5-49;
  their takes 0-4 are `test` (seen voices), and all of the test speaker's recordings
  `test_unseen` (a voice never heard). Shared copy: 1350 train, 150 test, 500 test_unseen.
- `takes`: the usual split, takes 0-4 of every digit and speaker are `test` (200), the rest train.
- `speaker`: the test speaker's recordings are `test` (500), the other speakers' train.

A `test_unseen` left by an earlier `both` goes when another split is prepared (it would share a
speaker with train). The lexicon comes from CMUdict without stress marks; the grammar accepts
exactly one digit. `transfer` writes data/transfer_an4, AN4's audio untranscribed, for
distillation (local/transfer.py).

Usage (from the repository root; run.sh: `local_py fsdd ...`, see local/cli.py):
    python -m local.fsdd download --dest corpus          # prints the corpus dir to use
    python -m local.fsdd prepare --corpus-dir DIR --data-dir data [--split both|takes|speaker]
    python -m local.fsdd transfer --data-dir data [--force]
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.utils.archive import safe_extract
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text
from local.cli import Corpus
from local.common import fetch, logger, read_pronunciations
from local.transfer import command as transfer_command

FSDD_URL = ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/"
            "master.tar.gz")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SHARED_CORPUS_DIR = SHARED / "fsdd"
SHARED_CMUDICT = SHARED / "cmudict" / "cmudict.dict"
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
TEST_TAKES = range(5)  # the usual split: takes 0-4 of every digit and speaker are test
SPLITS = ("both", "takes", "speaker")
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")

_log = logger("fsdd")


def _has_recordings(d: Path) -> bool:
    return any((d / "recordings").glob("*.wav"))


def _find_corpus(target: Path) -> Path | None:
    """The dir holding recordings/: target itself or the archive's top folder."""
    for d in [target, *sorted(p for p in target.iterdir() if p.is_dir())]:
        if _has_recordings(d):
            return d.resolve()
    return None


def download_fsdd(target_dir, corpus_dir=None, url: str = FSDD_URL, sha256: str | None = None,
                  force: bool = False, progress: bool = True) -> Path:
    """Return a directory holding `recordings/*.wav`, downloading into `target_dir` if needed.

    GitHub's branch archive has no fixed checksum: with `sha256` it is verified, otherwise
    the computed sha256 is logged so that a run can pin it.
    """
    target = Path(target_dir)
    existing = Path(corpus_dir) if corpus_dir is not None else SHARED_CORPUS_DIR
    if _has_recordings(existing):
        _log(f"using existing corpus at {existing.resolve()} (not copied)")
        return existing.resolve()
    if corpus_dir is not None:
        _log(f"no recordings/*.wav under {existing}; downloading instead")
    if (target / ".completed").exists() and not force and (found := _find_corpus(target)):
        _log(f"{target} already complete; skipping download")
        return found

    created = not target.exists()
    archive = target / ("fsdd.zip" if url.split("?")[0].endswith(".zip") else "fsdd.tar.gz")
    try:
        _log(f"downloading {url}")
        fetch(url, archive, sha256, _log, progress=progress,
              why="GitHub branch archives have no fixed checksum; pass --sha256 to pin it")
        safe_extract(archive, target)
        found = _find_corpus(target)
        if found is None:
            raise ValueError(f"{archive}: archive has no recordings/*.wav")
        write_text(target / ".completed", "")
    except BaseException:
        if archive.exists():  # a failed run must not leave an archive that looks usable
            archive.unlink()
        if created and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        raise
    return found


def read_cmudict(path, words: list[str], missing_ok: bool = False) -> dict[str, list[list[str]]]:
    """Pronunciations of `words` (upper case) from cmudict.dict, stress digits stripped,
    alternatives kept in file order and deduplicated; a word cmudict lacks is an error unless
    `missing_ok` (then it is left out)."""
    prons = read_pronunciations(path, str.upper, {w.upper() for w in words})
    missing = [w for w in words if w not in prons]
    if missing and not missing_ok:
        raise ValueError(f"{path}: no pronunciation for {missing}")
    return prons


def grammar_arpa() -> str:
    """Bigram ARPA for one digit per utterance: <s> -> each digit 1/10 -> </s> with prob 1.

    The bigrams out of every history sum to 1, so their backoff weights are 0 (log10 -99) and
    any path with a second digit (or none) costs over 200 nats; unigrams are the marginals of
    this language (each digit 1/20, </s> 1/2), so the unigram state is a proper distribution.
    """
    uni = ["-99.0000000\t<s>\t-99.0000000", f"{math.log10(0.5):.7f}\t</s>"]
    uni += [f"{math.log10(0.05):.7f}\t{w}\t-99.0000000" for w in sorted(DIGITS)]
    bi = [f"{math.log10(0.1):.7f}\t<s> {w}" for w in sorted(DIGITS)]
    bi += [f"0.0000000\t{w} </s>" for w in sorted(DIGITS)]
    lines = ["\\data\\", f"ngram 1={len(uni)}", f"ngram 2={len(bi)}", "", "\\1-grams:", *uni,
             "", "\\2-grams:", *bi, "", "\\end\\"]
    return "\n".join(lines) + "\n"


def _parse(corpus_dir: Path) -> list[tuple[str, int, int, Path]]:
    """(speaker, digit, take, path) for every recording, checked against the naming scheme."""
    out = []
    for w in sorted((corpus_dir / "recordings").glob("*.wav")):
        m = _NAME.match(w.stem)
        if not m:
            raise ValueError(f"{w}: file name is not {{digit}}_{{speaker}}_{{index}}.wav")
        out.append((m[2], int(m[1]), int(m[3]), w))
    if not out:
        raise ValueError(f"{corpus_dir / 'recordings'}: no .wav files")
    return out


def _write_set(out: Path, recs: list[tuple[str, int, int, Path]]) -> None:
    wav, text, utt2spk = {}, {}, {}
    for spk, digit, take, path in recs:
        utt = f"{spk}_{digit}_{take}"  # Kaldi: utterance ids start with the speaker id
        wav[utt], text[utt], utt2spk[utt] = str(path.resolve()), [DIGITS[digit]], spk
    write_data_dir(out, wav, text, utt2spk)


def _set_of(rec: tuple[str, int, int, Path], split: str, test_speaker: str) -> str:
    """The data dir recording `rec` (speaker, digit, take, path) goes to under `split`."""
    spk, _, take, _ = rec
    if split == "takes":
        return "test" if take in TEST_TAKES else "train"
    if split == "speaker":
        return "test" if spk == test_speaker else "train"
    if spk == test_speaker:  # both
        return "test_unseen"
    return "test" if take in TEST_TAKES else "train"


def prepare_fsdd(corpus_dir, output_dir, split: str = "both", test_speaker: str = "theo",
                 cmudict=SHARED_CMUDICT, force: bool = False) -> dict[str, Path]:
    """Write `train`, `test` (and for `split` both `test_unseen`), `local/dict` and
    `local/lm.arpa` under `output_dir` (the splits: see the module docstring).

    A rerun is skipped when every `.done` marker is there and the split options are the same.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (expected {', '.join(SPLITS)})")
    corpus_dir, out = Path(corpus_dir), Path(output_dir)
    sets = ["train", "test", "test_unseen"] if split == "both" else ["train", "test"]
    paths = {k: out / k for k in sets}
    paths.update(dict=out / "local" / "dict", lm=out / "local" / "lm.arpa")
    stages = [*(paths[k] for k in sets), paths["dict"], out / "local"]
    opts = f"split={split}" + (f" test_speaker={test_speaker}" if split != "takes" else "")
    opts_file = out / "local" / "fsdd_options"
    if (not force and all(is_done(d) for d in stages) and opts_file.is_file()
            and opts_file.read_text().strip() == opts):
        _log(f"{out} already prepared ({opts}); skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)
    if split != "both" and (out / "test_unseen").exists():
        shutil.rmtree(out / "test_unseen")  # an earlier `both`'s: it shares a speaker with train
        _log(f"removed {out / 'test_unseen'} (split={split} has none)")

    prons = read_cmudict(cmudict, DIGITS)
    recs = _parse(corpus_dir)
    speakers = sorted({r[0] for r in recs})
    if split != "takes" and test_speaker not in speakers:
        raise ValueError(f"{corpus_dir / 'recordings'}: no speaker '{test_speaker}' "
                         f"(speakers: {', '.join(speakers)})")
    for k in sets:
        _write_set(paths[k], [r for r in recs if _set_of(r, split, test_speaker) == k])

    lexicon = [f"{w} {' '.join(p)}" for w in sorted(prons) for p in prons[w]]
    phones = sorted({p for ps in prons.values() for pron in ps for p in pron})
    d = paths["dict"]
    write_lines(d / "lexicon.txt", ["<SIL> SIL", *lexicon])
    write_lines(d / "silence_phones.txt", ["SIL"])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt", phones)
    write_lines(d / "extra_questions.txt", [])
    write_text(paths["lm"], grammar_arpa())
    write_text(opts_file, opts + "\n")

    n = {k: len(load_data_dir(paths[k]).utts) for k in sets}
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    _log(f"prepared {', '.join(f'{v} {k}' for k, v in n.items())} utterances ({opts}) under "
         f"{out}; lexicon {len(lexicon)} prons, {len(phones)} phones")
    return paths


def _prepare_args(p) -> None:
    p.add_argument("--split", choices=SPLITS, default="both",
                   help="both: test = takes 0-4 of the other speakers, test_unseen = the test "
                        "speaker; takes: test = takes 0-4 of everything; speaker: test = the "
                        "test speaker")
    p.add_argument("--test-speaker", default="theo",
                   help="held-out speaker for --split both and speaker")
    p.add_argument("--cmudict", type=Path, default=SHARED_CMUDICT)


CLI = Corpus("fsdd", __doc__, download_fsdd, prepare_fsdd, holds="recordings/", url=FSDD_URL,
             prepare_args=_prepare_args,
             commands={"transfer": transfer_command("fsdd", ("an4",))})
main = CLI.main

if __name__ == "__main__":
    CLI.run()
