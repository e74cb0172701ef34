"""TIMIT (LDC93S1): find or fetch a licensed copy, and Kaldi-style data preparation.

TIMIT is not freely downloadable: the recipe reads the user's own copy (`--corpus-dir`), or
fetches an archive of it (tar or zip) from the user's own mirror (`--url`, checked against
`--sha256`). The layout is LDC's: `TRAIN|TEST/DR1..DR8/<SPEAKER>/<UTT>.WAV` (NIST SPHERE,
16-bit PCM, 16 kHz, read by soundfile as it is) with `<UTT>.PHN` (`START END PHONE` per line,
sample numbers and one of 61 phones) beside it, `.WRD` and `.TXT` too; upper- or lower-case
names, and the directory given may be the one holding TRAIN/ and TEST/ or one or two levels
above it (`LDC93S1/timit/TIMIT`).

Data preparation follows Kaldi's egs/timit/s5 (local/timit_data_prep.sh, timit_prepare_dict.sh):

- the SA1/SA2 sentences, read by every speaker, are dropped;
- data/train: every speaker under TRAIN/ (462 speakers, 3696 utterances), data/test: the core
  test set (the 24 speakers of CORE_TEST_SPEAKERS, 192 utterances), data/dev: the 50 speakers of
  DEV_SPEAKERS (400 utterances); both from TEST/, whose other 94 speakers are not used;
- utterance ids `<speaker>_<utt>`, lower-case (`fcjf0_si1027`);
- transcripts: the .PHN phones mapped from 61 to 48 (PHONE_MAP, Kaldi's
  conf/phones.60-48-39.map: the glottal stop q deleted, h# and pau become sil, the closures
  bcl dcl gcl -> vcl and pcl tcl kcl -> cl, ...);
- lexicon: each of the 48 phones is a word pronounced by itself, so word-level decoding gives
  phones; `sil` is the silence phone and a word of the transcripts (the recipe builds L without
  optional silence, Kaldi's `--sil-prob 0.0`);
- LM: a phone n-gram (Kneser-Ney; a bigram as Kaldi's) on the training transcripts;
- scoring: data/local/dict/score_map.txt folds the 48 phones to the standard 39 in references
  and hypotheses alike (make-lang and make-graph carry it to decoding; asr_kd.score.wer), so the
  %WER lines are phone error rates on 39 phones, as Kaldi's TIMIT results are.

Usage (from the repository root; run.sh: `local_py timit ...`, see local/cli.py):
    python -m local.timit download --corpus-dir /path/to/TIMIT     # prints the corpus dir
    python -m local.timit download --url URL --sha256 HEX --dest corpus
    python -m local.timit prepare --corpus-dir DIR --data-dir data [--lm-order 2]
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.score.wer import SCORE_MAP_FILE
from asr_kd.utils.archive import sha256sum
from asr_kd.utils.io import clear_done, is_done, mark_done, write_lines, write_text
from local.cli import Corpus
from local.common import logger, unpacked

# Kaldi's egs/timit/s5/conf/phones.60-48-39.map: each TIMIT phone, its training phone (48) and
# its scoring phone (39); q (the glottal stop) has neither and is deleted.
_MAP = """
aa aa aa   ae ae ae   ah ah ah   ao ao aa   aw aw aw   ax ax ah   ax-h ax ah   axr er er
ay ay ay   b b b   bcl vcl sil   ch ch ch   d d d   dcl vcl sil   dh dh dh   dx dx dx
eh eh eh   el el l   em m m   en en n   eng ng ng   epi epi sil   er er er   ey ey ey
f f f   g g g   gcl vcl sil   h# sil sil   hh hh hh   hv hh hh   ih ih ih   ix ix ih
iy iy iy   jh jh jh   k k k   kcl cl sil   l l l   m m m   n n n   ng ng ng   nx n n
ow ow ow   oy oy oy   p p p   pau sil sil   pcl cl sil   r r r   s s s   sh sh sh
t t t   tcl cl sil   th th th   uh uh uh   uw uw uw   ux uw uw   v v v   w w w   y y y
z z z   zh zh sh
""".split()
PHONE_MAP: dict[str, tuple[str, str] | None] = {
    **{_MAP[i]: (_MAP[i + 1], _MAP[i + 2]) for i in range(0, len(_MAP), 3)}, "q": None}
PHONES_48 = sorted({m[0] for m in PHONE_MAP.values() if m})
FOLD_48_39 = {m[0]: m[1] for m in PHONE_MAP.values() if m}
SIL = "sil"

# Kaldi's egs/timit/s5/conf/test_spk.list (the core test set) and dev_spk.list.
CORE_TEST_SPEAKERS = (
    "mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 mbpm0 mklt0 fnlp0 "
    "mcmj0 mjdh0 fmgd0 mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0").split()
DEV_SPEAKERS = (
    "faks0 fdac1 fjem0 mgwt0 mjar0 mmdb1 mmdm2 mpdf0 fcmh0 fkms0 mbdg0 mbwm0 mcsh0 fadg0 fdms0 "
    "fedw0 mgjf0 mglb0 mrtk0 mtaa0 mtdt0 mthc0 mwjg0 fnmr0 frew0 fsem0 mbns0 mmjr0 mdls0 mdlf0 "
    "mdvc0 mers0 fmah0 fdrw0 mrcs0 mrjm4 fcal1 mmwh0 fjsj0 majc0 mjsw0 mreb0 fgjd0 fjmg0 mroa0 "
    "mteb0 mjfc0 mrjr0 fmml0 mrws1").split()
# What the whole corpus gives: {set: (speakers, utterances)}.
FULL_SIZES = {"train": (462, 3696), "dev": (50, 400), "test": (24, 192)}

NOT_FREE = ("TIMIT (LDC93S1) is licensed by the LDC and cannot be downloaded from a public "
            "source: pass --corpus-dir DIR (your copy, holding TRAIN/ and TEST/) or --url URL "
            "--sha256 HEX (an archive of it on your own mirror)")
UNPINNED = "no --sha256 given; pass --sha256 HEX to check it"
_UTT = re.compile(r"(s[aix]\d+)\.wav")  # sa1, si1027, sx37: not converted copies (x.wav.wav)

_log = logger("timit")


def map_phones(phones, to: int = 48) -> list[str]:
    """TIMIT's 61 phones mapped to the 48 of training or the 39 of scoring; q is deleted."""
    if to not in (48, 39):
        raise ValueError(f"TIMIT phones map to 48 or 39, not {to}")
    out = []
    for p in phones:
        if p not in PHONE_MAP:
            raise ValueError(f"unknown TIMIT phone '{p}'")
        if PHONE_MAP[p] is not None:
            out.append(PHONE_MAP[p][0 if to == 48 else 1])
    return out


# ------------------------------------------------------------------------------ the corpus


def _child(d: Path, name: str) -> Path | None:
    """d's subdirectory called `name` in any case (TRAIN, train, Train)."""
    return next((c for c in sorted(d.iterdir()) if c.is_dir() and c.name.lower() == name), None)


def _is_root(d: Path) -> bool:
    return d.is_dir() and _child(d, "train") is not None and _child(d, "test") is not None


def find_timit(path) -> Path:
    """The directory holding TRAIN/ and TEST/: `path` itself or one or two levels below it."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such directory")
    level = [path]
    for depth in range(3):
        roots = [d for d in level if _is_root(d)]
        if len(roots) > 1:
            raise ValueError(f"{path}: more than one TIMIT copy in it "
                             f"({', '.join(map(str, roots))}); pass the one to use")
        if roots:
            return roots[0].resolve()
        if depth < 2:
            level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir()]
    raise ValueError(f"{path}: no TIMIT copy (TRAIN/ and TEST/, in any case) in it or one or "
                     f"two levels below it")


def _fetch_copy(target: Path, url: str, sha256: str | None, progress: bool) -> None:
    """Download and unpack the archive, and move its TIMIT root in as target/TIMIT, marked
    complete (target/.completed holds the archive's sha256)."""
    archive, marker = target / "timit-archive", target / ".completed"
    with unpacked(url, archive, sha256, _log, UNPINNED, progress) as unpack:
        digest = sha256.lower() if sha256 else sha256sum(archive)
        try:
            root = find_timit(unpack)
        except ValueError:
            raise ValueError(f"{url}: the archive holds no TIMIT copy (TRAIN/ and TEST/ at "
                             f"most two levels down)") from None
        marker.unlink(missing_ok=True)  # from here on the old copy (if any) is going
        if (target / "TIMIT").exists():
            shutil.rmtree(target / "TIMIT")
        os.replace(root, target / "TIMIT")
    write_text(marker, digest + "\n")


def download_timit(target_dir, corpus_dir=None, url: str | None = None,
                   sha256: str | None = None, force: bool = False, progress: bool = True) -> Path:
    """The TIMIT root to prepare: in `corpus_dir` (a local copy, used where it is), or
    `target_dir/TIMIT`, fetched from `url` (the user's mirror) unless an earlier download with
    the same sha256 is complete there."""
    if corpus_dir is not None and url is not None:
        raise ValueError("give --corpus-dir (a local copy) or --url (an archive), not both")
    if corpus_dir is not None:
        root = find_timit(corpus_dir)
        _log(f"using existing corpus at {root} (not copied)")
        return root
    target = Path(target_dir)
    marker = target / ".completed"
    done = marker.is_file() and (target / "TIMIT").is_dir()
    if url is None:
        if not done:
            raise ValueError(NOT_FREE)
    elif force or not done or (sha256 and marker.read_text().split() != [sha256.lower()]):
        _fetch_copy(target, url, sha256, progress)
    else:
        _log(f"{target / 'TIMIT'} already complete; skipping download (--force to redo)")
    root = find_timit(target / "TIMIT")
    _log(f"corpus at {root}")
    return root


def read_phn(path) -> list[str]:
    """The phones of a .PHN file (`START END PHONE` per line), each one of TIMIT's 61."""
    path, phones = Path(path), []
    for lineno, line in enumerate(path.read_text(encoding="ascii", errors="replace")
                                  .splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if (len(f) != 3 or not f[0].isdigit() or not f[1].isdigit()
                or int(f[0]) > int(f[1])):
            raise ValueError(f"{path}:{lineno}: expected 'START END PHONE' (sample numbers, "
                             f"START <= END), got {line!r}")
        if f[2] not in PHONE_MAP:
            raise ValueError(f"{path}:{lineno}: unknown phone '{f[2]}' (not one of TIMIT's 61)")
        phones.append(f[2])
    if not phones:
        raise ValueError(f"{path}: no phones")
    return phones


def read_corpus(root) -> dict[str, tuple[str, Path, Path, str]]:
    """{utt: (part, .WAV, .PHN, speaker)} of every SI and SX sentence under TRAIN/ and TEST/
    (part 'train' or 'test'); the SA sentences are left out."""
    root, out = Path(root), {}
    for part in ("train", "test"):
        part_dir = _child(root, part)
        for region in sorted(d for d in part_dir.iterdir() if d.is_dir()
                             and d.name.lower().startswith("dr")):
            for spk_dir in sorted(d for d in region.iterdir() if d.is_dir()):
                spk = spk_dir.name.lower()
                files = {f.name.lower(): f for f in spk_dir.iterdir() if f.is_file()}
                for name in sorted(files):
                    m = _UTT.fullmatch(name)
                    if not m or m[1].startswith("sa"):
                        continue
                    phn = files.get(f"{m[1]}.phn")
                    if phn is None:
                        raise ValueError(f"{files[name]}: no {m[1]}.PHN (in any case) beside it")
                    utt = f"{spk}_{m[1]}"
                    if utt in out:
                        raise ValueError(f"{files[name]}: utterance '{utt}' also at "
                                         f"{out[utt][1]}")
                    out[utt] = (part, files[name].resolve(), phn, spk)
    return out


def split_sets(utts: dict[str, tuple[str, Path, Path, str]]) -> dict[str, dict]:
    """{train, dev, test: {utt: ...}}: every TRAIN/ speaker; DEV_SPEAKERS and
    CORE_TEST_SPEAKERS from TEST/."""
    sets = {"train": {u: v for u, v in utts.items() if v[0] == "train"}}
    for k, speakers in (("dev", DEV_SPEAKERS), ("test", CORE_TEST_SPEAKERS)):
        sets[k] = {u: v for u, v in utts.items() if v[0] == "test" and v[3] in speakers}
    for k, s in sets.items():
        if not s:
            raise ValueError(f"no {k} utterances: no SI or SX sentence under " +
                             ("TRAIN/" if k == "train" else f"TEST/ of a {k} speaker"))
    return sets


def _describe(sizes: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{k} {n} speakers, {u} utterances" for k, (n, u) in sizes.items())


def prepare_timit(corpus_dir, output_dir, lm_order: int = 2, force: bool = False):
    """Write `train`, `dev`, `test`, `local/dict` (with score_map.txt) and `local/lm.arpa`
    under `output_dir`; a rerun with the same corpus and LM order is skipped."""
    root, out = find_timit(corpus_dir), Path(output_dir)
    names = ("train", "dev", "test")
    paths = {**{k: out / k for k in names}, "dict": out / "local" / "dict",
             "lm": out / "local" / "lm.arpa"}
    stages = [*(paths[k] for k in names), paths["dict"], out / "local"]
    opts, opts_file = f"corpus={root} lm_order={lm_order}", out / "local" / "timit_options"
    if (not force and all(is_done(d) for d in stages) and opts_file.is_file()
            and opts_file.read_text().strip() == opts):
        _log(f"{out} already prepared ({opts}); skipping (use --force to redo)")
        return paths
    for d in stages:
        clear_done(d)

    sets = split_sets(read_corpus(root))
    texts = {}
    for k, utts in sets.items():
        texts[k] = {}
        for u, (_, _, phn, _) in utts.items():
            texts[k][u] = map_phones(read_phn(phn), 48)
            if not texts[k][u]:
                raise ValueError(f"{phn}: no phones but q (deleted)")
        write_data_dir(paths[k], {u: str(v[1]) for u, v in utts.items()}, texts[k],
                       {u: v[3] for u, v in utts.items()})

    d = paths["dict"]
    write_lines(d / "lexicon.txt", [f"{p} {p}" for p in PHONES_48])
    write_lines(d / "silence_phones.txt", [SIL])
    write_lines(d / "optional_silence.txt", [SIL])
    write_lines(d / "nonsilence_phones.txt", [p for p in PHONES_48 if p != SIL])
    write_lines(d / "extra_questions.txt", [])
    write_lines(d / SCORE_MAP_FILE, [f"{p} {FOLD_48_39[p]}" for p in PHONES_48])

    lm = train_kneser_ney(list(texts["train"].values()), order=lm_order, vocab=PHONES_48)
    write_text(paths["lm"], lm.to_arpa())
    write_text(opts_file, opts + "\n")

    for k in names:
        load_data_dir(paths[k])
    for stage in stages:  # `local` last: it stands for the whole preparation
        mark_done(stage)
    sizes = {k: (len({v[3] for v in s.values()}), len(s)) for k, s in sets.items()}
    _log(f"{root}: {_describe(sizes)}; {len(PHONES_48)} phones; {lm_order}-gram LM, dev "
         f"perplexity {lm.perplexity(texts['dev'].values()):.2f}")
    if sizes != FULL_SIZES:
        _log(f"warning: not the whole corpus, which gives {_describe(FULL_SIZES)}")
    return paths


def _prepare_args(p) -> None:
    p.add_argument("--lm-order", type=int, default=2, help="order of the phone n-gram LM")


# --url: an archive (tar or zip) of the user's own copy, on the user's own mirror
CLI = Corpus("timit", __doc__, download_timit, prepare_timit,
             holds="TRAIN/ and TEST/, or one or two levels above them", url=None,
             prepare_args=_prepare_args)
main = CLI.main

if __name__ == "__main__":
    CLI.run()
