"""CMU AN4 ("census"): find or download the corpus and do Kaldi-style data preparation.

948 train and 130 test utterances (74 and 10 speakers, disjoint), 16 kHz close-talking read
speech: spelled letters, digits, numbers, dates, a few control words. `etc/` holds the file
lists (`an4_{train,test}.fileids`, paths under `wav/` without extension), transcripts in the
same order (`WORDS (utt-id)`; train lines wrapped in `<s> ... </s>`), the lexicon `an4.dic`
(alternatives `WORD(2)`), `an4.phone` and `an4.filler`. Audio is `.wav` (the shared copy, see
its SOURCE.md) or NIST SPHERE `.sph` (CMU's an4_sphere.tar.gz: `an4/{etc,wav}/`, 16-bit PCM,
which libsndfile reads as it is).

`download` uses `--corpus-dir`, else the shared copy (unless `--no-shared`), else an earlier
download (`DEST/an4`, unless `--force`), else fetches CMU's archive (`--url`) into DEST and unpacks
it there; the archive is deleted once unpacked, and a failure leaves nothing behind (nor touches
an earlier download). CMU publishes no sha256:
an unpinned archive's sha256 is logged, and `--sha256` pins it.

`transfer` (after `prepare`) writes data/transfer_librispeech_subset and
data/transfer_librispeech_dev_clean, LibriSpeech audio untranscribed, for distillation
(local/transfer.py); AN4's own audio is never a transfer set of this recipe.

Usage (from the repository root; run.sh: `local_py an4 ...`, see local/cli.py):
    python -m local.an4 download --dest corpus [--no-shared]   # prints the corpus dir
    python -m local.an4 prepare --corpus-dir DIR --data-dir data [--lm-order 3] \
        [--dev-speakers 6]
    python -m local.an4 transfer --data-dir data [--force]
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text
from local.cli import Corpus
from local.common import logger, unpacked
from local.transfer import command as transfer_command

SHARED_CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "an4"
AN4_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"  # 64 MB, as Kaldi's
UNPINNED = "CMU publishes no sha256 for it; pin it with --sha256"
SPLITS = {"train": "an4_train", "test": "an4_test"}
AUDIO = (".wav", ".sph")  # the shared copy's WAV, CMU's NIST SPHERE
_LINE = re.compile(r"^(.*)\((\S+)\)\s*$")  # "WORDS (utt-id)"

_log = logger("an4")


def _is_corpus(d: Path) -> bool:
    return (d / "etc" / "an4_train.fileids").is_file() and (d / "wav").is_dir()


def download_an4(target_dir, corpus_dir=None, url: str = AN4_URL, sha256: str | None = None,
                 shared: bool = True, force: bool = False, progress: bool = True) -> Path:
    """Return a directory holding AN4's `etc/` and `wav/`: `corpus_dir`, the shared copy (when
    `shared`), an earlier download in `target_dir/an4` (unless `force`), or CMU's archive from
    `url` unpacked there (verified against `sha256` when given, its sha256 logged otherwise)."""
    found = None
    if corpus_dir is not None:
        if not _is_corpus(Path(corpus_dir)):
            raise ValueError(f"no AN4 corpus (etc/an4_train.fileids and wav/) at {corpus_dir} "
                             f"(leave --corpus-dir out to download)")
        found = Path(corpus_dir)
    elif shared and _is_corpus(SHARED_CORPUS_DIR):
        found = SHARED_CORPUS_DIR
    if found is not None:
        _log(f"using existing corpus at {found.resolve()} (not copied)")
        return found.resolve()
    corpus = Path(target_dir) / "an4"
    if _is_corpus(corpus) and not force:
        _log(f"{corpus} already complete; skipping download")
        return corpus.resolve()
    archive = Path(target_dir) / (Path(url.split("?")[0]).name or "an4.tar.gz")
    with unpacked(url, archive, sha256, _log, UNPINNED, progress) as unpack:
        if not _is_corpus(unpack / "an4"):
            raise ValueError(f"{archive}: no an4/etc/an4_train.fileids and an4/wav/ in the "
                             f"archive")
        if corpus.exists():  # --force: the earlier download goes once the new one is here
            shutil.rmtree(corpus)
        os.replace(unpack / "an4", corpus)  # whole, or not at all
    n = sum(1 for f in (corpus / "wav").rglob("*") if f.suffix in AUDIO)
    _log(f"unpacked {n} audio files into {corpus}")
    return corpus.resolve()


def read_lexicon(etc: Path) -> tuple[dict[str, list[list[str]]], list[str]]:
    """an4.dic as {WORD: [pron, ...]} (`WORD(2)` is an alternative of WORD) and the speech
    phones (an4.phone minus SIL); every lexicon phone must be in an4.phone."""
    dic, phone_file = etc / "an4.dic", etc / "an4.phone"
    phones = phone_file.read_text().split()
    lexicon: dict[str, list[list[str]]] = {}
    for lineno, line in enumerate(dic.read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        word = re.sub(r"\(\d+\)$", "", f[0])
        unknown = [p for p in f[1:] if p not in phones]
        if not f[1:] or unknown:
            raise ValueError(f"{dic}:{lineno}: word '{f[0]}': "
                             + (f"phones {unknown} are not in {phone_file}" if unknown
                                else "empty pronunciation"))
        lexicon.setdefault(word, []).append(f[1:])
    return lexicon, [p for p in phones if p != "SIL"]


def read_split(corpus_dir: Path, name: str, lexicon, fillers: set[str]):
    """(wav, text, utt2spk) of one split; checks file/transcript pairing, audio and words."""
    etc = corpus_dir / "etc"
    ids_path, tr_path = etc / f"{name}.fileids", etc / f"{name}.transcription"
    ids = ids_path.read_text().split()
    lines = tr_path.read_text().splitlines()
    if len(ids) != len(lines):
        raise ValueError(f"{tr_path}: {len(lines)} lines for {len(ids)} files in {ids_path}")
    wav, text, utt2spk = {}, {}, {}
    for lineno, (fid, line) in enumerate(zip(ids, lines), 1):
        m = _LINE.match(line)
        base = fid.rsplit("/", 1)[-1]
        if not m or m[2] != base:
            raise ValueError(f"{tr_path}:{lineno}: expected 'WORDS ({base})' to match "
                             f"{ids_path}:{lineno}, got {line!r}")
        spk = speaker_of(base, f"{ids_path}:{lineno}")
        utt = f"{spk}-{base}"  # Kaldi: the speaker id comes first
        words = [w for w in m[1].split() if w not in fillers]  # <s> </s> <sil>
        for w in words:
            if w not in lexicon:
                raise ValueError(f"{tr_path}:{lineno}: utterance '{base}': word '{w}' is not "
                                 f"in {etc / 'an4.dic'}")
        if not words:
            raise ValueError(f"{tr_path}:{lineno}: utterance '{base}': empty transcript")
        audio = find_audio(corpus_dir, fid, f"{ids_path}:{lineno}")
        wav[utt], text[utt], utt2spk[utt] = str(audio.resolve()), words, spk
    return wav, text, utt2spk


def speaker_of(base: str, where: str) -> str:
    """The speaker of an utterance id like an251-fash-b (the middle part)."""
    parts = base.split("-")
    if len(parts) != 3:
        raise ValueError(f"{where}: utterance id '{base}' is not like an251-fash-b (no speaker "
                         f"in the middle)")
    return parts[1]


def find_audio(corpus_dir: Path, fid: str, where: str) -> Path:
    """The audio file of file id `fid` (`wav/<fid>.wav` or `.sph`); `where` names the line of
    the file list it comes from, for the error where there is none."""
    stem = corpus_dir / "wav" / fid
    audio = next((a for a in (stem.with_name(stem.name + x) for x in AUDIO) if a.is_file()), None)
    if audio is None:
        raise ValueError(f"{where}: no audio file {stem}.wav or {stem}.sph")
    return audio


def audio_files(corpus_dir) -> list[tuple[str, str, Path]]:
    """(speaker, file base name, audio file) of every file id in both splits' file lists, train
    then test, in file-list order; no transcripts are read (transfer sets, local/transfer.py)."""
    corpus_dir, out = Path(corpus_dir), []
    for name in SPLITS.values():
        ids_path = corpus_dir / "etc" / f"{name}.fileids"
        for lineno, fid in enumerate(ids_path.read_text().split(), 1):
            base, where = fid.rsplit("/", 1)[-1], f"{ids_path}:{lineno}"
            out.append((speaker_of(base, where), base, find_audio(corpus_dir, fid, where)))
    return out


def dev_speakers_of(speakers, n: int) -> list[str]:
    """`n` speakers spread evenly over the sorted list (AN4's ids start with f or m, so the
    spread takes both)."""
    speakers = sorted(set(speakers))
    if not 0 <= n < len(speakers):
        raise ValueError(f"--dev-speakers {n}: the training set has {len(speakers)} speakers")
    return [speakers[(2 * i + 1) * len(speakers) // (2 * n)] for i in range(n)]


def split_dev(train, n: int):
    """(train, dev) from train's (wav, text, utt2spk): dev holds every utterance of `n` whole
    training speakers (dev_speakers_of), train the rest."""
    wav, text, utt2spk = train
    held = set(dev_speakers_of(utt2spk.values(), n))
    parts = [({}, {}, {}), ({}, {}, {})]
    for u in wav:
        part = parts[utt2spk[u] in held]
        for table, src in zip(part, (wav, text, utt2spk)):
            table[u] = src[u]
    return parts[0], parts[1]


def prepare_an4(corpus_dir, output_dir, lm_order: int = 3, dev_speakers: int = 0,
                force: bool = False):
    """Write `train`, `test`, `local/dict` and `local/lm.arpa` (Kneser-Ney on train text)
    under `output_dir`; with `dev_speakers`, also `dev`: that many whole training speakers,
    out of train (and of the LM's text), the set that chooses the LM weight. A rerun is
    skipped when done with the same options."""
    corpus_dir, out = Path(corpus_dir), Path(output_dir)
    paths = {"train": out / "train", "test": out / "test", "dict": out / "local" / "dict",
             "lm": out / "local" / "lm.arpa"}
    if dev_speakers:
        paths["dev"] = out / "dev"
    splits = [k for k in ("train", "dev", "test") if k in paths]
    stages = [paths[k] for k in splits] + [paths["dict"], out / "local"]
    opts = f"lm_order={lm_order}" + (f" dev_speakers={dev_speakers}" if dev_speakers else "")
    opts_file = out / "local" / "an4_options"
    if (not force and all(is_done(d) for d in stages) and opts_file.is_file()
            and opts_file.read_text().strip() == opts):
        _log(f"{out} already prepared ({opts}); skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)

    etc = corpus_dir / "etc"
    lexicon, phones = read_lexicon(etc)
    fillers = {ln.split()[0] for ln in (etc / "an4.filler").read_text().splitlines() if ln.strip()}
    sets = {k: read_split(corpus_dir, name, lexicon, fillers) for k, name in SPLITS.items()}
    if dev_speakers:
        sets["train"], sets["dev"] = split_dev(sets["train"], dev_speakers)
    elif (out / "dev").is_dir():  # an earlier preparation's, whose speakers are train's now
        shutil.rmtree(out / "dev")
    for k, (wav, text, utt2spk) in sets.items():
        write_data_dir(paths[k], wav, text, utt2spk)

    d = paths["dict"]
    write_lines(d / "lexicon.txt", ["<SIL> SIL"] + [f"{w} {' '.join(p)}" for w in sorted(lexicon)
                                                    for p in lexicon[w]])
    write_lines(d / "silence_phones.txt", ["SIL"])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt", phones)
    write_lines(d / "extra_questions.txt", [])

    train_text, test_text = (list(sets[k][1].values()) for k in ("train", "test"))
    lm = train_kneser_ney(train_text, order=lm_order, vocab=lexicon)
    write_text(paths["lm"], lm.to_arpa())
    write_text(opts_file, opts + "\n")

    for k in splits:
        load_data_dir(paths[k])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    if dev_speakers:
        dev_utt2spk = sets["dev"][2]
        _log(f"dev: {len(dev_utt2spk)} utterances of {dev_speakers} training speakers "
             f"({' '.join(sorted(set(dev_utt2spk.values())))}), out of train and the LM")
    _log(f"prepared {len(train_text)} train and {len(test_text)} test utterances under {out}; "
         f"lexicon {len(lexicon)} words, {len(phones)} speech phones; {lm_order}-gram "
         f"Kneser-Ney LM: test perplexity {lm.perplexity(test_text):.2f}")
    return paths


def _download_args(p) -> None:
    p.add_argument("--no-shared", dest="shared", action="store_false",
                   help="download (into DEST) even where the shared copy is present")


def _prepare_args(p) -> None:
    p.add_argument("--lm-order", type=int, default=3, help="order of the Kneser-Ney LM")
    p.add_argument("--dev-speakers", type=int, default=0,
                   help="hold this many whole training speakers out as data/dev (the LM "
                        "weight's choice)")


CLI = Corpus("an4", __doc__, download_an4, prepare_an4, holds="etc/ and wav/", url=AN4_URL,
             download_args=_download_args, prepare_args=_prepare_args,
             commands={"transfer": transfer_command(
                 "an4", ("librispeech_subset", "librispeech_dev_clean"))})
main = CLI.main

if __name__ == "__main__":
    CLI.run()
