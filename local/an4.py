"""CMU AN4 ("census"): locate the corpus and do Kaldi-style data preparation.

948 train and 130 test utterances (74 and 10 speakers, disjoint), 16 kHz close-talking read
speech: spelled letters, digits, numbers, dates, a few control words. The copy here is WAV
(see its SOURCE.md). `etc/` holds the file lists (`an4_{train,test}.fileids`), transcripts in
the same order (`WORDS (utt-id)`; train lines wrapped in `<s> ... </s>`), the lexicon
`an4.dic` (alternatives `WORD(2)`), `an4.phone` and `an4.filler`.

Usage (from a recipe dir):
    python ../../local/an4.py download --dest corpus          # prints the corpus dir to use
    python ../../local/an4.py prepare --corpus-dir DIR --data-dir data [--lm-order 3]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import asr_kd  # noqa: F401
except ImportError:  # run by path from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr_kd.data import load_data_dir, write_data_dir  # noqa: E402
from asr_kd.lang.ngram import train_kneser_ney  # noqa: E402
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text  # noqa: E402

SHARED_CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "an4"
SPLITS = {"train": "an4_train", "test": "an4_test"}
_LINE = re.compile(r"^(.*)\((\S+)\)\s*$")  # "WORDS (utt-id)"


def _log(msg: str) -> None:
    print(f"an4: {msg}", file=sys.stderr)


def _is_corpus(d: Path) -> bool:
    return (d / "etc" / "an4_train.fileids").is_file() and (d / "wav").is_dir()


def download_an4(target_dir, corpus_dir=None) -> Path:
    """Return a directory holding AN4's `etc/` and `wav/`: `corpus_dir`, the shared copy, or
    an earlier copy in `target_dir`. Fetching CMU's archive is not implemented yet."""
    candidates = [Path(corpus_dir)] if corpus_dir is not None else [SHARED_CORPUS_DIR]
    for d in [*candidates, Path(target_dir)]:
        if _is_corpus(d):
            _log(f"using existing corpus at {d.resolve()} (not copied)")
            return d.resolve()
    raise ValueError(f"no AN4 corpus (etc/an4_train.fileids and wav/) at "
                     f"{' or '.join(str(d) for d in [*candidates, Path(target_dir)])}; "
                     f"downloading AN4 is not supported yet: pass --corpus-dir")


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
        parts = base.split("-")
        if len(parts) != 3:
            raise ValueError(f"{ids_path}:{lineno}: utterance id '{base}' is not like "
                             f"an251-fash-b (no speaker in the middle)")
        spk, utt = parts[1], f"{parts[1]}-{base}"  # Kaldi: the speaker id comes first
        words = [w for w in m[1].split() if w not in fillers]  # <s> </s> <sil>
        for w in words:
            if w not in lexicon:
                raise ValueError(f"{tr_path}:{lineno}: utterance '{base}': word '{w}' is not "
                                 f"in {etc / 'an4.dic'}")
        if not words:
            raise ValueError(f"{tr_path}:{lineno}: utterance '{base}': empty transcript")
        audio = corpus_dir / "wav" / f"{fid}.wav"
        if not audio.is_file():
            raise ValueError(f"{ids_path}:{lineno}: audio file {audio} does not exist")
        wav[utt], text[utt], utt2spk[utt] = str(audio.resolve()), words, spk
    return wav, text, utt2spk


def prepare_an4(corpus_dir, output_dir, lm_order: int = 3, force: bool = False):
    """Write `train`, `test`, `local/dict` and `local/lm.arpa` (Kneser-Ney on train text)
    under `output_dir`; a rerun is skipped when done with the same LM order."""
    corpus_dir, out = Path(corpus_dir), Path(output_dir)
    paths = {"train": out / "train", "test": out / "test", "dict": out / "local" / "dict",
             "lm": out / "local" / "lm.arpa"}
    stages = [paths["train"], paths["test"], paths["dict"], out / "local"]
    opts, opts_file = f"lm_order={lm_order}", out / "local" / "an4_options"
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

    for k in ("train", "test"):
        load_data_dir(paths[k])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    _log(f"prepared {len(train_text)} train and {len(test_text)} test utterances under {out}; "
         f"lexicon {len(lexicon)} words, {len(phones)} speech phones; {lm_order}-gram "
         f"Kneser-Ney LM: test perplexity {lm.perplexity(test_text):.2f}")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    dl = sub.add_parser("download", help="locate the corpus; prints its directory")
    dl.add_argument("--corpus-dir", type=Path, default=None,
                    help=f"existing copy to use (default: {SHARED_CORPUS_DIR} if present)")
    dl.add_argument("--dest", type=Path, default=Path("corpus"),
                    help="where a copy would be (checked after --corpus-dir / the shared copy)")
    pr = sub.add_parser("prepare", help="write Kaldi data dirs, dictionary and LM")
    pr.add_argument("--corpus-dir", type=Path, required=True, help="directory with etc/ and wav/")
    pr.add_argument("--data-dir", type=Path, default=Path("data"))
    pr.add_argument("--lm-order", type=int, default=3, help="order of the Kneser-Ney LM")
    pr.add_argument("--force", action="store_true", help="redo even if .done markers exist")
    args = p.parse_args(argv)
    try:
        if args.cmd == "download":
            print(download_an4(args.dest, corpus_dir=args.corpus_dir))  # stdout: only the path
        else:
            prepare_an4(args.corpus_dir, args.data_dir, lm_order=args.lm_order, force=args.force)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
