"""LibriSpeech in its own layout: locate a copy and do Kaldi-style data preparation.

`<part>/<speaker>/<chapter>/<spk>-<chap>-<nnnn>.flac` with one `<spk>-<chap>.trans.txt` per
chapter (`<utt-id> WORDS`), and `SPEAKERS.TXT` (`ID | SEX | SUBSET | MINUTES | NAME`). The
`librispeech_subset` recipe uses the hour of train-clean-5 in ../shared/corpora (24 speakers,
see its SOURCE.md); speakers, not utterances, are split into train / dev / test: the
lowest-numbered female and male speaker are the test set, the next two the dev set.

Lexicon: CMUdict (stress marks dropped). A word CMUdict lacks is mapped to `<UNK>`, pronounced
`SPN` (Kaldi's spoken noise), in every transcript, the references included: about 1.7% of the
tokens here, each scored as the word `<UNK>`. The LM is a Kneser-Ney n-gram on the training
transcripts, plus (`--lm-text train+other`, the default) the transcripts of the training
speakers' other train-clean-5 utterances in `lm_text/` (their audio is not here); the dev and
test speakers' lines are never used, so a test word the LM text lacks stays out of the LM.

Usage (from a recipe dir):
    python ../../local/librispeech.py download --dest corpus       # prints the corpus dir
    python ../../local/librispeech.py prepare --corpus-dir DIR --data-dir data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run by path: local/ (and asr_kd without `pip install -e .`)
    sys.path.insert(0, str(REPO))

from asr_kd.data import load_data_dir, write_data_dir  # noqa: E402
from asr_kd.lang.ngram import train_kneser_ney  # noqa: E402
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text  # noqa: E402
from local.fsdd import read_cmudict  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SHARED_CORPUS_DIR = SHARED / "librispeech_subset"
CMUDICT = SHARED / "cmudict" / "cmudict.dict"
PART = "train-clean-5"
OTHER_TEXT = Path("lm_text") / f"{PART}.other-utterances.txt"
LM_TEXTS = ("train", "train+other")
UNK, SPN = "<UNK>", "SPN"


def _log(msg: str) -> None:
    print(f"librispeech: {msg}", file=sys.stderr)


def _is_corpus(d: Path) -> bool:
    return (d / PART).is_dir() and (d / "SPEAKERS.TXT").is_file()


def find_corpus(target_dir, corpus_dir=None) -> Path:
    """A directory holding `train-clean-5/` and `SPEAKERS.TXT`: `corpus_dir`, the shared copy,
    or an earlier copy in `target_dir`."""
    candidates = [Path(corpus_dir)] if corpus_dir is not None else [SHARED_CORPUS_DIR]
    for d in [*candidates, Path(target_dir)]:
        if _is_corpus(d):
            _log(f"using existing corpus at {d.resolve()} (not copied)")
            return d.resolve()
    raise ValueError(f"no LibriSpeech copy ({PART}/ and SPEAKERS.TXT) at "
                     f"{' or '.join(str(d) for d in [*candidates, Path(target_dir)])}; "
                     f"pass --corpus-dir")


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


def read_part(part_dir: Path) -> dict[str, tuple[Path, str, list[str]]]:
    """{utt: (flac, speaker, words)} of every transcript line under `part_dir`."""
    out = {}
    for trans in sorted(part_dir.glob("*/*/*.trans.txt")):
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            utt, *words = line.split()
            flac = trans.parent / f"{utt}.flac"
            if not words:
                raise ValueError(f"{trans}:{lineno}: utterance '{utt}' has no words")
            if not flac.is_file():
                raise ValueError(f"{trans}:{lineno}: utterance '{utt}': audio file {flac} "
                                 f"does not exist")
            out[utt] = (flac.resolve(), utt.split("-")[0], words)
    if not out:
        raise ValueError(f"{part_dir}: no */*/*.trans.txt transcripts")
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


def read_other_text(corpus_dir: Path) -> list[tuple[str, list[str]]]:
    """(utt, words) of lm_text/train-clean-5.other-utterances.txt."""
    path, out = Path(corpus_dir) / OTHER_TEXT, []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        utt, *words = line.split()
        if not words:
            raise ValueError(f"{path}:{lineno}: utterance '{utt}' has no words")
        out.append((utt, words))
    return out


def _other_words(corpus_dir: Path, lm_text: str) -> set[str]:
    if lm_text != "train+other":
        return set()
    return {w for _, ws in read_other_text(corpus_dir) for w in ws}


def prepare_librispeech(corpus_dir, output_dir, lm_order: int = 3, lm_text: str = "train+other",
                        cmudict: Path = CMUDICT, force: bool = False) -> dict[str, Path]:
    """Write `train`, `dev`, `test`, `local/dict` and `local/lm.arpa` under `output_dir`; a rerun
    with the same options is skipped."""
    if lm_text not in LM_TEXTS:
        raise ValueError(f"--lm-text must be one of {', '.join(LM_TEXTS)}, got '{lm_text}'")
    corpus_dir, out = Path(corpus_dir), Path(output_dir)
    paths = {k: out / k for k in ("train", "dev", "test")}
    paths.update(dict=out / "local" / "dict", lm=out / "local" / "lm.arpa")
    stages = [paths["train"], paths["dev"], paths["test"], paths["dict"], out / "local"]
    opts, opts_file = f"lm_order={lm_order} lm_text={lm_text}", out / "local" / "options"
    if (not force and all(is_done(d) for d in stages) and opts_file.is_file()
            and opts_file.read_text().strip() == opts):
        _log(f"{out} already prepared ({opts}); skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)

    utts = read_part(corpus_dir / PART)
    split = split_speakers(read_speakers(corpus_dir / "SPEAKERS.TXT"),
                           {spk for _, spk, _ in utts.values()})
    prons = read_cmudict(cmudict, sorted({w for _, _, ws in utts.values() for w in ws}
                                         | set(_other_words(corpus_dir, lm_text))),
                         missing_ok=True)
    oov = sum(w not in prons for _, _, ws in utts.values() for w in ws)

    def known(words):
        return [w if w in prons else UNK for w in words]

    texts = {}
    for name, speakers in split.items():
        sel = {u: v for u, v in utts.items() if v[1] in speakers}
        texts[name] = {u: known(ws) for u, (_, _, ws) in sel.items()}
        write_data_dir(paths[name], {u: str(f) for u, (f, _, _) in sel.items()}, texts[name],
                       {u: spk for u, (_, spk, _) in sel.items()})

    lm_sentences = list(texts["train"].values())
    if lm_text == "train+other":
        lm_sentences += [known(ws) for utt, ws in read_other_text(corpus_dir)
                         if utt.split("-")[0] in split["train"]]
    vocab = sorted({w for ws in lm_sentences for w in ws}
                   | {w for t in texts.values() for ws in t.values() for w in ws})
    d = paths["dict"]
    write_lines(d / "lexicon.txt", [f"{UNK} {SPN}"] + [f"{w} {' '.join(p)}" for w in vocab
                                                      if w != UNK for p in prons[w]])
    write_lines(d / "silence_phones.txt", ["SIL", SPN])
    write_lines(d / "optional_silence.txt", ["SIL"])
    write_lines(d / "nonsilence_phones.txt",
                sorted({p for w in vocab if w != UNK for pron in prons[w] for p in pron}))
    write_lines(d / "extra_questions.txt", [])
    lm = train_kneser_ney(lm_sentences, order=lm_order)
    write_text(paths["lm"], lm.to_arpa())
    write_text(opts_file, opts + "\n")

    for k in ("train", "dev", "test"):
        load_data_dir(paths[k])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    lm_vocab = set(lm.vocab)
    test_words = [w for ws in texts["test"].values() for w in ws]
    test_oov = sum(w not in lm_vocab for w in test_words)
    counts = ", ".join(f"{k} {len(t)}" for k, t in texts.items())
    _log(f"speakers train {len(split['train'])}, dev {sorted(split['dev'])}, test "
         f"{sorted(split['test'])}; utterances {counts}; "
         f"{oov} word tokens CMUdict lacks became {UNK}; {lm_order}-gram LM on {lm_text} "
         f"({len(lm_sentences)} sentences, {len(lm_vocab)} words): test tokens outside it "
         f"{test_oov} / {len(test_words)} ({100 * test_oov / len(test_words):.1f}%)")
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
    pr.add_argument("--corpus-dir", type=Path, required=True)
    pr.add_argument("--data-dir", type=Path, default=Path("data"))
    pr.add_argument("--lm-order", type=int, default=3, help="order of the Kneser-Ney LM")
    pr.add_argument("--lm-text", default="train+other", choices=LM_TEXTS)
    pr.add_argument("--cmudict", type=Path, default=CMUDICT)
    pr.add_argument("--force", action="store_true", help="redo even if .done markers exist")
    args = p.parse_args(argv)
    try:
        if args.cmd == "download":
            print(find_corpus(args.dest, corpus_dir=args.corpus_dir))  # stdout: only the path
        else:
            prepare_librispeech(args.corpus_dir, args.data_dir, args.lm_order, args.lm_text,
                                args.cmudict, args.force)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
