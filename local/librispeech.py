"""LibriSpeech in its own layout: download from OpenSLR and Kaldi-style data preparation.

`LibriSpeech/<part>/<speaker>/<chapter>/<spk>-<chap>-<nnnn>.flac` (16 kHz), one
`<spk>-<chap>.trans.txt` per chapter (`<utt-id> WORDS`), and `SPEAKERS.TXT`
(`ID | SEX | SUBSET | MINUTES | NAME`). OpenSLR resource 12 holds the parts of the 1000 hours
(train-clean-100, train-clean-360, train-other-500, dev/test-clean, dev/test-other), resource
31 mini LibriSpeech (train-clean-5, 5 h; dev-clean-2, 2 h), resource 11 the ARPA LMs and
`librispeech-lexicon.txt`. Three recipes use this script:

- librispeech_subset: the hour of train-clean-5 in ../shared/corpora (24 speakers, see its
  SOURCE.md), split by speaker (`--split-by-speaker`): the lowest-numbered female and male
  speaker are data/test, the next two data/dev, the other 20 data/train. A second test set,
  data/dev_clean, is ../shared/corpora/librispeech_dev_clean (`--dev-clean DIR`, the default
  with `--split-by-speaker`; `--no-dev-clean` leaves it out): 14 whole dev-clean speakers, 817
  utterances, MP3 at 16 kHz in LibriSpeech's layout (`dev-clean/<spk>/<chap>/<utt>.mp3`).
  wav.scp lists the MP3 files as they are (soundfile decodes them); a dev-clean speaker who is
  also a training speaker is an error.
- mini_librispeech: train-clean-5 is data/train, dev-clean-2 data/dev_clean_2.
- librispeech: the `--train` parts joined into data/train, each `--test` part data/<part>
  (dashes as underscores); the OpenSLR lexicon and ARPA LM.

Case: LibriSpeech's transcripts and OpenSLR's lexicon and LMs are upper case; CMUdict,
cmudict-en-us.dict and the en_us LM lower case. Every word is lower-cased where it is read, by
`normalise` alone: transcripts, lexicons, ARPA LMs (an upper-case ARPA, such as OpenSLR's, is
lower-cased as it is copied to data/local/lm.arpa). So the data dirs' text, the lexicon and the
LM, and hence decoding and scoring, spell every word alike; tokens in angle brackets (`<s>`,
`</s>`, `<UNK>`) stay as spelled.

LM (`--lm`) and lexicon:
- `en_us` (librispeech_subset's default): CMU Sphinx's general English trigram,
  ../shared/corpora/lm_en_us/en-us.arpa.gz (72,547 words), with its dictionary
  cmudict-en-us.dict restricted to the LM's words plus the training transcripts' words. A word
  outside that lexicon (missing from the dictionary; in a dev or test set, also a word of
  neither the LM nor the training text, which the decoder could not output anyway) becomes
  `<UNK>` in its transcript.
- `train` (the default of this script, mini_librispeech's) and `train+other`: a Kneser-Ney
  n-gram (`--lm-order`) on the training transcripts, plus with `train+other` the training
  speakers' lines of `lm_text/<part>.other-utterances.txt` (the shared hour has one; their
  audio is not there); CMUdict's pronunciations of every word of the LM and the transcripts.
  Held-out speakers' sentences never reach the LM.
- `--arpa FILE` (plain or .gz) replaces the LM of `--lm` (librispeech: OpenSLR's); `--lexicon
  FILE` (librispeech-lexicon.txt or CMUdict's format) the dictionary.
Stress marks are dropped from every dictionary, so all give the same 39 phones. A word without
a pronunciation becomes `<UNK>`, pronounced `SPN` (Kaldi's spoken noise), in every transcript,
the references included (it is scored as the word `<UNK>`). The log gives per data dir its
utterances, its `<UNK>` tokens and its tokens outside the LM (the OOV rate).

Downloads are checked against sha256 sums: torchaudio's for resource 12. Resources 31 and 11
publish none, so those files are fetched, their sha256 logged, and `--checksums FILE`
(sha256sum's format, `HEX  NAME` per line) pins them. An archive is unpacked beside the corpus
and its part moved in only once complete; a failed download leaves nothing behind.

`transfer` (after `prepare`) writes data/transfer_an4, AN4's audio untranscribed, for
distillation (local/transfer.py); LibriSpeech audio is never a transfer set of these recipes.

Usage (from the repository root; run.sh: `local_py librispeech ...`, see local/cli.py):
    python -m local.librispeech download --dest corpus --parts train-clean-5 dev-clean-2
    python -m local.librispeech download-lm --dest corpus/lm --files librispeech-lexicon.txt
    python -m local.librispeech prepare --corpus-dir DIR --data-dir data \\
        --train train-clean-5 --test dev-clean-2 [--lexicon FILE] [--arpa FILE]
    python -m local.librispeech prepare --corpus-dir DIR --data-dir data --split-by-speaker \\
        --lm en_us|train+other|train [--lm-order N] [--dev-clean DIR | --no-dev-clean]
    python -m local.librispeech transfer --data-dir data [--force]
Without --parts, `download` finds the shared hour (librispeech_subset).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.utils.io import atomic_path, clear_done, is_done, mark_done, write_lines, write_text
from local.cli import Command, Corpus
from local.common import fetch, logger, read_pronunciations, remove_if_empty, unpacked
from local.transfer import command as transfer_command

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SHARED_CORPUS_DIR = SHARED / "librispeech_subset"
CMUDICT = SHARED / "cmudict" / "cmudict.dict"
EN_US_ARPA = SHARED / "lm_en_us" / "en-us.arpa.gz"  # CMU Sphinx's general English trigram
EN_US_DICT = SHARED / "lm_en_us" / "cmudict-en-us.dict"  # its dictionary
DEV_CLEAN = SHARED / "librispeech_dev_clean"  # 14 dev-clean speakers, MP3
DEV_CLEAN_PART, DEV_CLEAN_EXT = "dev-clean", "mp3"
SHARED_PART = "train-clean-5"  # the only part of the shared hour
LMS = ("en_us", "train+other", "train")
UNK, SPN = "<UNK>", "SPN"

OPENSLR = "https://www.openslr.org/resources"
RESOURCE = {**dict.fromkeys(("train-clean-100", "train-clean-360", "train-other-500", "dev-clean",
                             "dev-other", "test-clean", "test-other"), 12),
            "train-clean-5": 31, "dev-clean-2": 31}
LM_RESOURCE = 11
# Resource 12's archives, as torchaudio.datasets.LIBRISPEECH verifies them.
SHA256 = {
    "dev-clean.tar.gz": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other.tar.gz": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean.tar.gz": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other.tar.gz": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100.tar.gz": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360.tar.gz": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500.tar.gz": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
UNPINNED = "OpenSLR publishes no sha256 for it; pin it with --checksums"

_log = logger("librispeech")


# ------------------------------------------------------------------------------ download


def read_checksums(path) -> dict[str, str]:
    """{file name: sha256} from sha256sum's output format (`HEX  NAME`, `*NAME` for binary)."""
    path, out = Path(path), {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", f[0]):
            raise ValueError(f"{path}:{lineno}: expected '<sha256>  <file name>', got {line!r}")
        out[Path(f[1].lstrip("*")).name] = f[0].lower()
    return out


def find_corpus(target_dir, corpus_dir=None) -> Path:
    """A directory holding `train-clean-5/` and `SPEAKERS.TXT`: `corpus_dir`, the shared hour,
    or an earlier copy in `target_dir`."""
    candidates = [Path(corpus_dir)] if corpus_dir is not None else [SHARED_CORPUS_DIR]
    for d in [*candidates, Path(target_dir)]:
        if (d / SHARED_PART).is_dir() and (d / "SPEAKERS.TXT").is_file():
            _log(f"using existing corpus at {d.resolve()} (not copied)")
            return d.resolve()
    raise ValueError(f"no LibriSpeech copy ({SHARED_PART}/ and SPEAKERS.TXT) at "
                     f"{' or '.join(str(d) for d in [*candidates, Path(target_dir)])}; "
                     f"pass --corpus-dir")


def _download_part(part: str, target: Path, url: str, sha256: str | None,
                   progress: bool) -> None:
    """Fetch and unpack one part's archive into target/LibriSpeech/<part>, marked complete."""
    created = not target.exists()
    archive = target / f"{part}.tar.gz"
    corpus, marker = target / "LibriSpeech", target / f".{part}.completed"
    complete = False
    try:
        with unpacked(url, archive, sha256, _log, UNPINNED, progress) as unpack:
            if not (unpack / "LibriSpeech" / part).is_dir():
                raise ValueError(f"{archive}: no LibriSpeech/{part}/ in the archive")
            corpus.mkdir(exist_ok=True)
            marker.unlink(missing_ok=True)  # from here on the old copy (--force) is going
            if (corpus / part).exists():
                shutil.rmtree(corpus / part)
            for f in (unpack / "LibriSpeech").iterdir():  # SPEAKERS.TXT etc., in every archive
                if f.is_file():
                    os.replace(f, corpus / f.name)
            os.replace(unpack / "LibriSpeech" / part, corpus / part)
        write_text(marker, "")
        complete = True
        _log(f"{part}: {sum(1 for _ in (corpus / part).glob('*/*/*.flac'))} FLAC files in "
             f"{corpus / part}")
    finally:
        if created and not complete:
            remove_if_empty(corpus, target)


def download_librispeech(target_dir, parts, corpus_dir=None, base_url: str = OPENSLR,
                         checksums=None, force: bool = False, progress: bool = True) -> Path:
    """Return a directory holding every part in `parts`: `corpus_dir` (a local copy), or
    `target_dir/LibriSpeech`, where the parts not yet complete are downloaded from OpenSLR.

    The shared hour is never used here: it is only a selection of train-clean-5.
    """
    unknown = [p for p in parts if p not in RESOURCE]
    if unknown:
        raise ValueError(f"unknown LibriSpeech part(s) {', '.join(unknown)} (known: "
                         f"{', '.join(RESOURCE)})")
    if corpus_dir is not None:
        missing = [p for p in parts if not (Path(corpus_dir) / p).is_dir()]
        if missing:
            raise ValueError(f"{corpus_dir}: no {', '.join(f'{p}/' for p in missing)} (leave "
                             f"--corpus-dir out to download)")
        _log(f"using existing corpus at {Path(corpus_dir).resolve()} (not copied)")
        return Path(corpus_dir).resolve()
    target = Path(target_dir)
    sums = {**SHA256, **(read_checksums(checksums) if checksums else {})}
    for part in parts:
        if ((target / f".{part}.completed").exists() and (target / "LibriSpeech" / part).is_dir()
                and not force):
            _log(f"{target / 'LibriSpeech' / part} already complete; skipping download")
            continue
        url = f"{base_url.rstrip('/')}/{RESOURCE[part]}/{part}.tar.gz"
        _download_part(part, target, url, sums.get(f"{part}.tar.gz"), progress)
    return (target / "LibriSpeech").resolve()


def download_lm(target_dir, files, lm_dir=None, base_url: str = OPENSLR, checksums=None,
                progress: bool = True) -> Path:
    """Return a directory holding `files` of OpenSLR resource 11 (lexicon, ARPA LMs): `lm_dir`
    (a local copy), or `target_dir`, where those not there yet are downloaded."""
    if lm_dir is not None:
        missing = [f for f in files if not (Path(lm_dir) / f).is_file()]
        if missing:
            raise ValueError(f"{lm_dir}: no {', '.join(missing)} (leave --lm-dir out to "
                             f"download)")
        return Path(lm_dir).resolve()
    target = Path(target_dir)
    created = not target.exists()
    sums = read_checksums(checksums) if checksums else {}
    try:
        for name in files:
            # A file is only ever renamed into place complete; a pinned one is rechecked.
            if (target / name).is_file() and name not in sums:
                _log(f"{target / name} already there; skipping download")
                continue
            url = f"{base_url.rstrip('/')}/{LM_RESOURCE}/{name}"
            _log(f"downloading {url}")
            fetch(url, target / name, sums.get(name), _log, UNPINNED, progress=progress)
    except BaseException:
        if created:
            remove_if_empty(target)
        raise
    return target.resolve()


# ------------------------------------------------------------------------------ prepare


def normalise(word: str) -> str:
    """A word as every file `prepare` writes spells it: lower case, except the tokens in angle
    brackets (`<s>`, `</s>`, `<UNK>`), kept as spelled. The one place case is decided: every
    reader of words below (transcripts, lexicons, ARPA LMs) passes them through it."""
    return word if word[:1] == "<" and word[-1:] == ">" else word.lower()


def read_speakers(path: Path) -> dict[str, str]:
    """SPEAKERS.TXT as {speaker id: 'F' or 'M'}."""
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";"):
            continue
        f = [x.strip() for x in line.split("|")]
        if len(f) < 2 or f[1] not in ("F", "M"):
            raise ValueError(f"{path}:{lineno}: expected 'ID | SEX | ...', got {line!r}")
        out[f[0]] = f[1]
    return out


def read_part(part_dir: Path, ext: str = "flac") -> dict[str, tuple[Path, str, list[str]]]:
    """{utt: (audio file, speaker, words)} of every transcript line under `part_dir`, the audio
    `<utt>.<ext>` beside its transcript (FLAC; MP3 in the dev-clean copy), words normalised."""
    out = {}
    for trans in sorted(part_dir.glob("*/*/*.trans.txt")):
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, *words = line.split()
            audio = trans.parent / f"{utt}.{ext}"
            if not words:
                raise ValueError(f"{trans}:{lineno}: utterance '{utt}' has no words")
            if not audio.is_file():
                raise ValueError(f"{trans}:{lineno}: utterance '{utt}': audio file {audio} "
                                 f"does not exist")
            out[utt] = (audio.resolve(), utt.split("-")[0], [normalise(w) for w in words])
    if not out:
        raise ValueError(f"{part_dir}: no */*/*.trans.txt transcripts")
    return out


def audio_files(part_dir, ext: str = "flac") -> list[tuple[str, str, Path]]:
    """(speaker, utterance id, audio file) of every `<spk>/<chap>/<spk>-<chap>-<nnnn>.<ext>`
    under `part_dir`, sorted; transcripts are not read (transfer sets: local/transfer.py)."""
    part_dir, out = Path(part_dir), []
    for f in sorted(part_dir.glob(f"*/*/*.{ext}")):
        spk, chap = f.parent.parent.name, f.parent.name
        if not re.fullmatch(rf"{re.escape(spk)}-{re.escape(chap)}-\d+", f.stem):
            raise ValueError(f"{f}: not named <speaker>-<chapter>-<n>.{ext} after its folders "
                             f"<speaker>/<chapter>/")
        out.append((spk, f.stem, f))
    if not out:
        raise ValueError(f"{part_dir}: no */*/*.{ext} audio files")
    return out


def split_speakers(sexes: dict[str, str], present: set[str]) -> dict[str, set[str]]:
    """test: the lowest-numbered female and male speaker; dev: the next two; train: the rest."""
    by_sex = {s: sorted((p for p in present if sexes.get(p) == s), key=int) for s in "FM"}
    if min(len(v) for v in by_sex.values()) < 3:
        raise ValueError(f"need at least 3 female and 3 male speakers to split, have "
                         f"{len(by_sex['F'])} and {len(by_sex['M'])}")
    test = {by_sex["F"][0], by_sex["M"][0]}
    dev = {by_sex["F"][1], by_sex["M"][1]}
    return {"train": present - test - dev, "dev": dev, "test": test}


def read_other_text(corpus_dir: Path, part: str = SHARED_PART) -> list[tuple[str, list[str]]]:
    """(utt, words) of lm_text/<part>.other-utterances.txt, words normalised."""
    path, out = Path(corpus_dir) / "lm_text" / f"{part}.other-utterances.txt", []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt, *words = line.split()
        if not words:
            raise ValueError(f"{path}:{lineno}: utterance '{utt}' has no words")
        out.append((utt, [normalise(w) for w in words]))
    return out


def read_lexicon(path, words=None) -> dict[str, list[list[str]]]:
    """A pronouncing dictionary (any of read_pronunciations' formats), words normalised."""
    return read_pronunciations(path, normalise, words)


def _open_arpa(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else \
        open(path, encoding="utf-8")


def arpa_words(path) -> set[str]:
    """The words of an ARPA LM's unigram section (`<s>`, `</s>` left out), as spelled there;
    reading stops at the end of that section (en_us: 72,547 of its 3.8M lines)."""
    path, words, section = Path(path), set(), None
    with _open_arpa(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("\\"):
                section = line.strip()
                if section not in ("\\data\\", "\\1-grams:"):
                    break
            elif section == "\\1-grams:" and line.strip():
                fields = line.split()
                if len(fields) < 2:
                    raise ValueError(f"{path}:{lineno}: expected 'LOGPROB WORD [BACKOFF]', got "
                                     f"{line.strip()!r}")
                words.add(fields[1])
    if not words:
        raise ValueError(f"{path}: no \\1-grams: section (not an ARPA LM?)")
    return words - {"<s>", "</s>"}


def lm_vocabulary(path) -> tuple[set[str], bool]:
    """An ARPA LM's words normalised, and whether that changes any (then `copy_arpa` lower-cases
    the file); an error where two of its words differ only in case."""
    seen: dict[str, str] = {}
    for w in sorted(arpa_words(path)):
        if normalise(w) in seen:
            raise ValueError(f"{path}: '{seen[normalise(w)]}' and '{w}' are both words of this "
                             f"LM; lower-casing it would merge them")
        seen[normalise(w)] = w
    return set(seen), any(n != w for n, w in seen.items())


def copy_arpa(src, dst, lower: bool) -> None:
    """`src` (plain or .gz) as plain text at `dst` (kaldilm reads plain text); with `lower`, its
    words normalised (an upper-case LM such as OpenSLR's)."""
    with atomic_path(dst) as tmp, _open_arpa(Path(src)) as f, \
            open(tmp, "w", encoding="utf-8") as out:
        if not lower:
            shutil.copyfileobj(f, out)
            return
        for line in f:  # headers, numbers and <s> unchanged by lower(); <UNK> kept by normalise
            out.write(re.sub(r"\S+", lambda m: normalise(m[0]), line) if "<" in line else
                      line.lower())


def _sets_of(corpus_dir: Path, train: list[str], test: list[str], split_by_speaker: bool):
    """({set: {utt: (audio, speaker, words)}}, log line) for the data dirs to write."""
    if split_by_speaker:
        if len(train) != 1 or test:
            raise ValueError("--split-by-speaker splits one --train part and takes no --test")
        utts = read_part(corpus_dir / train[0])
        split = split_speakers(read_speakers(corpus_dir / "SPEAKERS.TXT"),
                               {spk for _, spk, _ in utts.values()})
        return ({k: {u: v for u, v in utts.items() if v[1] in spk} for k, spk in split.items()},
                f"speakers train {len(split['train'])}, dev {sorted(split['dev'])}, test "
                f"{sorted(split['test'])}")
    both = sorted(set(train) & set(test))
    if both:
        raise ValueError(f"part(s) {', '.join(both)} both in --train and --test")
    for p in train + test:
        if not (corpus_dir / p).is_dir():
            raise ValueError(f"{corpus_dir / p}: no such part")
    sets = {"train": {u: v for p in train for u, v in read_part(corpus_dir / p).items()}}
    sets.update({p.replace("-", "_"): read_part(corpus_dir / p) for p in test})
    return sets, f"train {'+'.join(train)}, test {', '.join(test)}"


def read_dev_clean(dev_clean, train_speakers: set[str]) -> dict[str, tuple[Path, str, list[str]]]:
    """The dev-clean copy's utterances (`dev_clean`/dev-clean/, MP3), as read_part gives them;
    an error naming any of its speakers who is a training speaker."""
    utts = read_part(Path(dev_clean) / DEV_CLEAN_PART, DEV_CLEAN_EXT)
    both = sorted({spk for _, spk, _ in utts.values()} & train_speakers)
    if both:
        raise ValueError(f"{dev_clean}: speaker(s) {', '.join(both)} also in data/train: "
                         f"dev_clean must hold held-out speakers only")
    return utts


def _oov_line(name: str, texts: dict[str, list[str]], lm_words: set[str]) -> str:
    toks = [w for ws in texts.values() for w in ws]
    out = sum(w not in lm_words for w in toks)
    return (f"{name} {len(texts)} utterances, {toks.count(UNK)} {UNK}, {out} / {len(toks)} "
            f"tokens outside the LM ({100 * out / max(len(toks), 1):.1f}%)")


def prepare_librispeech(corpus_dir, output_dir, train=(SHARED_PART,), test=(),
                        split_by_speaker: bool = False, dev_clean=None, lm: str = "train",
                        arpa=None, lm_order: int = 3, lexicon=None,
                        force: bool = False) -> dict[str, Path]:
    """Write the data dirs, `local/dict` and `local/lm.arpa` under `output_dir` (see the module
    docstring): `dev_clean`, a copy of the dev-clean speakers, is data/dev_clean; `lm` one of
    LMS, `arpa` an LM that replaces its own; `lexicon` replaces its dictionary. A rerun with
    the same options is skipped."""
    if lm not in LMS:
        raise ValueError(f"--lm must be one of {', '.join(LMS)}, got '{lm}'")
    corpus_dir, out, train, test = Path(corpus_dir), Path(output_dir), list(train), list(test)
    en_us = lm == "en_us"
    arpa = Path(arpa) if arpa else (EN_US_ARPA if en_us else None)
    lexicon = Path(lexicon) if lexicon else (EN_US_DICT if en_us else CMUDICT)
    opts = (f"train={'+'.join(train)} test={'+'.join(test)} split_by_speaker={split_by_speaker} "
            f"dev_clean={dev_clean} lm={lm} lexicon={lexicon} " +
            (f"arpa={arpa}" if arpa else f"lm_order={lm_order}"))
    opts_file = out / "local" / "options"
    names = ["train", "dev", "test"] if split_by_speaker else \
        ["train", *(p.replace("-", "_") for p in test)]
    if dev_clean is not None:
        if "dev_clean" in names:
            raise ValueError("--test dev-clean and --dev-clean would both be data/dev_clean")
        names.append("dev_clean")
    paths = {k: out / k for k in names}
    paths.update(dict=out / "local" / "dict", lm=out / "local" / "lm.arpa")
    stages = [*(paths[k] for k in names), paths["dict"], out / "local"]
    if (not force and all(is_done(d) for d in stages) and opts_file.is_file()
            and opts_file.read_text().strip() == opts):
        _log(f"{out} already prepared ({opts}); skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)

    # Everything is read and checked before anything is written.
    sets, described = _sets_of(corpus_dir, train, test, split_by_speaker)
    train_spk = {spk for _, spk, _ in sets["train"].values()}
    if dev_clean is not None:
        sets["dev_clean"] = read_dev_clean(dev_clean, train_spk)
        described += (f", dev_clean {len({s for _, s, _ in sets['dev_clean'].values()})} "
                      f"speakers ({Path(dev_clean) / DEV_CLEAN_PART})")
    other = [] if lm != "train+other" or arpa else \
        [ws for utt, ws in read_other_text(corpus_dir, train[0]) if utt.split("-")[0] in train_spk]
    lm_words, lower_lm = lm_vocabulary(arpa) if arpa else (set(), False)
    # en_us: the dictionary restricted to the LM's words and the training transcripts'; else
    # every word of the LM and of all transcripts that the dictionary has.
    wanted = lm_words | {w for _, _, ws in sets["train"].values() for w in ws}
    if not en_us:
        wanted |= {w for s in sets.values() for _, _, ws in s.values() for w in ws}
        wanted |= {w for ws in other for w in ws}
    prons = read_lexicon(lexicon, wanted)

    def known(words):
        return [w if w in prons else UNK for w in words]

    texts = {}
    for name, utts in sets.items():
        texts[name] = {u: known(ws) for u, (_, _, ws) in utts.items()}
        write_data_dir(paths[name], {u: str(f) for u, (f, _, _) in utts.items()}, texts[name],
                       {u: spk for u, (_, spk, _) in utts.items()})

    if arpa:
        copy_arpa(arpa, paths["lm"], lower_lm)
        lm_desc = f"ARPA {arpa}" + (" (lower-cased)" if lower_lm else "")
    else:
        lm_sentences = list(texts["train"].values()) + [known(ws) for ws in other]
        model = train_kneser_ney(lm_sentences, order=lm_order)
        write_text(paths["lm"], model.to_arpa())
        lm_words = set(model.vocab)
        lm_desc = f"{lm_order}-gram LM on {lm} ({len(lm_sentences)} sentences)"
    vocab = sorted((lm_words | {w for t in texts.values() for ws in t.values() for w in ws})
                   & prons.keys())
    d = paths["dict"]
    write_lines(d / "lexicon.txt", [f"{UNK} {SPN}"] + [f"{w} {' '.join(p)}" for w in vocab
                                                      for p in prons[w]])
    write_lines(d / "silence_phones.txt", ["SIL", SPN])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt",
                sorted({p for w in vocab for pron in prons[w] for p in pron}))
    write_lines(d / "extra_questions.txt", [])
    write_text(opts_file, opts + "\n")

    for k in names:
        load_data_dir(paths[k])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    _log(f"{described}; lexicon {lexicon}, {len(vocab)} words (a word not in it is {UNK}); "
         f"{lm_desc}, {len(lm_words)} words; "
         + "; ".join(_oov_line(k, texts[k], lm_words) for k in names))
    return paths


# ------------------------------------------------------------------------------ command line


def download(target_dir, corpus_dir=None, parts=None, base_url: str = OPENSLR, checksums=None,
             force: bool = False, progress: bool = True) -> Path:
    """`download`: without `parts`, `find_corpus` (the shared hour); else `download_librispeech`."""
    if parts is None:
        return find_corpus(target_dir, corpus_dir=corpus_dir)
    return download_librispeech(target_dir, parts, corpus_dir, base_url, checksums, force,
                                progress)


def _openslr_args(p) -> None:
    p.add_argument("--base-url", default=OPENSLR,
                   help="OpenSLR or a mirror: files are BASE/<resource>/<name>")
    p.add_argument("--checksums", type=Path, default=None,
                   help="sha256sum-format file: sha256 of archives OpenSLR has none for (or "
                        "overriding ours)")


def _download_args(p) -> None:
    p.add_argument("--parts", nargs="+", default=None,
                   help=f"OpenSLR parts ({', '.join(RESOURCE)}); without it: find the shared "
                        f"hour of {SHARED_PART} (default --corpus-dir {SHARED_CORPUS_DIR})")
    _openslr_args(p)


def _download_lm_args(p) -> None:
    p.add_argument("--files", nargs="+", required=True,
                   help="e.g. librispeech-lexicon.txt 3-gram.pruned.3e-7.arpa.gz")
    p.add_argument("--lm-dir", type=Path, default=None, help="existing copy to use")
    p.add_argument("--dest", type=Path, default=Path("corpus") / "lm")
    _openslr_args(p)
    p.add_argument("--no-progress", action="store_true")


def prepare(corpus_dir, data_dir, split_by_speaker: bool = False, dev_clean=None,
            no_dev_clean: bool = False, **kw) -> dict[str, Path]:
    """`prepare`: `prepare_librispeech`, with the shared dev-clean copy as data/dev_clean by
    default when splitting by speaker (the librispeech_subset recipe) and none otherwise."""
    if no_dev_clean and dev_clean is not None:
        raise ValueError("--dev-clean and --no-dev-clean both given")
    if dev_clean is None and split_by_speaker and not no_dev_clean:
        dev_clean = DEV_CLEAN
    return prepare_librispeech(corpus_dir, data_dir, split_by_speaker=split_by_speaker,
                               dev_clean=dev_clean, **kw)


def _prepare_args(p) -> None:
    p.add_argument("--train", nargs="+", default=[SHARED_PART], help="parts joined as train")
    p.add_argument("--test", nargs="*", default=[], help="parts, each a data dir of its own")
    p.add_argument("--split-by-speaker", action="store_true",
                   help="split the one --train part into train/dev/test by speaker")
    p.add_argument("--dev-clean", type=Path, default=None,
                   help=f"a copy of dev-clean speakers ({DEV_CLEAN_PART}/*/*/*.{DEV_CLEAN_EXT}) "
                        f"to write as data/dev_clean; default: {DEV_CLEAN} with "
                        f"--split-by-speaker, none otherwise")
    p.add_argument("--no-dev-clean", action="store_true", help="no data/dev_clean")
    p.add_argument("--lm", default="train", choices=LMS,
                   help=f"en_us: {EN_US_ARPA.name} with {EN_US_DICT.name}; train, "
                        f"train+other: a Kneser-Ney LM on that text (module docstring)")
    p.add_argument("--arpa", type=Path, default=None,
                   help="ARPA LM (plain or .gz) to use instead of --lm's (then --lm-order is "
                        "unused)")
    p.add_argument("--lm-order", type=int, default=3, help="order of the Kneser-Ney LM")
    p.add_argument("--lexicon", type=Path, default=None,
                   help=f"pronouncing dictionary (librispeech-lexicon.txt or CMUdict's format); "
                        f"default: {EN_US_DICT.name} with --lm en_us, else {CMUDICT}")


CLI = Corpus(
    "librispeech", __doc__, download, prepare, holds="the parts, e.g. train-clean-5/",
    archive=False, download_args=_download_args, prepare_args=_prepare_args,
    commands={"download-lm": Command(
        "download resource 11 files; prints their directory",
        lambda dest, **kw: download_lm(dest, **kw), _download_lm_args),
        "transfer": transfer_command("librispeech", ("an4",))})
main = CLI.main

if __name__ == "__main__":
    CLI.run()
