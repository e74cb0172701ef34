"""Transfer sets: untranscribed audio of other corpora, as Kaldi data dirs for distillation.

A recipe's teacher labels a transfer set (soft targets) and its student learns from those; no
transcript is needed, and none is written. `data/transfer_<source>/` holds `wav.scp` (`<utt>
<absolute audio path>`, one recording per utterance), `utt2spk`, `spk2utt`, `utt2dur` (seconds,
from the file headers via soundfile.info: exact for WAV, SPHERE and FLAC, and for these MP3s too,
each checked against the decoded length) and `source` (which corpus, from where), and no `text`.
Ids are prefixed with the source, so that they cannot collide with the recipe's own:

| `--sources` | its audio (all 16 kHz) | utterance id | speaker id |
|---|---|---|---|
| librispeech_subset | all FLAC in `train-clean-5/` | `lss-<spk>-<chap>-<nnnn>` | `lss-<spk>` |
| librispeech_dev_clean | all MP3 in `dev-clean/` | `lsdc-<spk>-<chap>-<nnnn>` | `lsdc-<spk>` |
| an4 | both splits' files, WAV or SPHERE | `an4-<spk>-<an251-fash-b>` | `an4-<spk>` |

each read from `--corpora DIR`/<source> (default: the shared copies beside the checkout). The
audio is listed at its own rate: the feature stage resamples (AN4 at 16 kHz for FSDD's 8 kHz).

Which recipe takes which (the defaults of `--sources`): an4 takes librispeech_subset and
librispeech_dev_clean; the librispeech recipes (librispeech_subset, mini_librispeech,
librispeech) take an4; fsdd takes an4.

Nothing of a recipe's test or dev sets and nothing of a held-out speaker may get in. A transfer
set comes from another corpus (a source of the recipe's own corpus is refused), and before
writing it is checked against every data dir the recipe has under `--data-dir` (so `prepare`
runs first): no audio file in common (by path, nor by file name), no speaker id and no utterance
id in common, raw or prefixed. Any of these is an error and nothing is written.

Each dir is built beside its place and renamed into it whole, then marked `.done`; a rerun
with the same source skips it (printing the same summary), `--force` (or another source
directory) builds it again, replacing the old dir and whatever later stages wrote into it.
One line per dir on stdout: utterances, speakers, hours.

Usage (from a recipe dir, after `prepare`; run.sh: `local_py <corpus> transfer ...`):
    python -m local.an4 transfer --data-dir data [--sources ...] [--corpora DIR] [--force]
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from asr_kd.data import load_data_dir, write_data_dir
from asr_kd.data.datadir import DataDir, is_pipe
from asr_kd.utils.io import is_done, mark_done, write_lines, write_text
from local.cli import Command
from local.common import SHARED_CORPORA

PREFIX = "transfer_"  # data/transfer_<source>


def _an4(corpus_dir: Path) -> list[tuple[str, str, Path]]:
    from local.an4 import audio_files  # here: local.an4 imports this module for its command

    return audio_files(corpus_dir)


def _librispeech(part: str, ext: str) -> Callable[[Path], list[tuple[str, str, Path]]]:
    def files(corpus_dir: Path) -> list[tuple[str, str, Path]]:
        from local.librispeech import audio_files  # as _an4

        return audio_files(corpus_dir / part, ext)

    return files


@dataclass(frozen=True)
class Source:
    """A corpus transfer sets are made of: `prefix` of its ids, `corpus` the recipes of which
    must not take it (their own audio), `files(corpus_dir)` its (speaker, file id, audio)."""

    prefix: str
    corpus: str
    files: Callable[[Path], list[tuple[str, str, Path]]]


SOURCES = {
    "librispeech_subset": Source("lss", "librispeech", _librispeech("train-clean-5", "flac")),
    "librispeech_dev_clean": Source("lsdc", "librispeech", _librispeech("dev-clean", "mp3")),
    "an4": Source("an4", "an4", _an4),
}


def own_sets(data_dir: Path) -> dict[str, DataDir]:
    """The recipe's own data dirs under `data_dir` (every dir with a wav.scp that is not a
    transfer set); at least one, or there is nothing to check a transfer set against."""
    out = {}
    if data_dir.is_dir():
        for d in sorted(data_dir.iterdir()):
            if not d.name.startswith((PREFIX, ".")) and (d / "wav.scp").is_file():
                out[d.name] = load_data_dir(d, allow_pipes=True, require_text=False,
                                            check_audio_exists=False)
    if not out:
        raise ValueError(f"{data_dir}: no data dirs to check transfer sets against (nothing of "
                         f"the recipe's test sets may get in); run `prepare` first")
    return out


def _audio_of(spec: str) -> list[Path]:
    """The audio file(s) a wav.scp entry reads: its path, or a pipe's words that are files."""
    words = spec.split()[:-1] if is_pipe(spec) else [spec]
    return [Path(w).resolve() for w in words if not is_pipe(spec) or Path(w).is_file()]


def check_disjoint(name: str, files: list[tuple[str, str, Path]], wav: dict[str, str],
                   utt2spk: dict[str, str], own: dict[str, DataDir]) -> None:
    """ValueError where transfer set `name` (`files` as the source gives them; `wav`,
    `utt2spk` with prefixed ids) shares with one of the recipe's data dirs `own` an audio file
    (by resolved path or by file name), a speaker or an utterance id (raw or prefixed)."""
    paths = {p.resolve(): fid for _, fid, p in files}
    stems = {p.stem: fid for _, fid, p in files}
    speakers = {spk for spk, _, _ in files} | set(utt2spk.values())
    utts = {fid for _, fid, _ in files} | set(wav)
    for d in own.values():
        own_audio = [a for spec in d.wav.values() for a in _audio_of(spec)]
        clash = ([f"audio {a} ({paths[a]})" for a in own_audio if a in paths]
                 + [f"audio file name {a.name} ({stems[a.stem]})" for a in own_audio
                    if a.stem in stems]
                 + [f"speaker {s}" for s in sorted(speakers & set(d.spk2utt))]
                 + [f"utterance {u}" for u in sorted(utts & set(d.utt2spk))])
        if clash:
            more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
            raise ValueError(f"transfer set {name} shares with {d.path}: "
                             f"{', '.join(clash[:3])}{more}; nothing written")


def _summary(out: Path, done: bool = False) -> str:
    durs = [float(ln.split()[1]) for ln in (out / "utt2dur").read_text().splitlines()]
    spks = {ln.split()[1] for ln in (out / "utt2spk").read_text().splitlines()}
    src = (out / "source").read_text().strip()
    return (f"{out}: {len(durs)} utterances, {len(spks)} speakers, {sum(durs) / 3600:.2f} h "
            f"({sum(durs) / 60:.1f} min), from {src}" + (" (already done)" if done else ""))


def write_transfer_set(name: str, corpus_dir, out, own: dict[str, DataDir],
                       force: bool = False) -> str:
    """Write source `name` (a key of SOURCES) from `corpus_dir` as the data dir `out`, checked
    against the recipe's data dirs `own`; returns its summary line."""
    source, corpus_dir, out = SOURCES[name], Path(corpus_dir).resolve(), Path(out)
    opts = f"{name} {corpus_dir}"
    if (not force and is_done(out) and (out / "source").is_file()
            and (out / "source").read_text().strip() == opts):
        return _summary(out, done=True)

    files = source.files(corpus_dir)
    wav, utt2spk, dur = {}, {}, {}
    for spk, fid, path in files:
        # Kaldi: the speaker id first; LibriSpeech's ids have it (lsdc-174-50561-0000).
        utt = f"{source.prefix}-{fid if fid.startswith(f'{spk}-') else f'{spk}-{fid}'}"
        if utt in wav:
            raise ValueError(f"{path}: utterance id {utt} twice (also {wav[utt]})")
        info = sf.info(str(path))
        if info.channels != 1:
            raise ValueError(f"{path}: {info.channels} channels, not mono")
        wav[utt], utt2spk[utt] = str(path.resolve()), f"{source.prefix}-{spk}"
        dur[utt] = info.frames / info.samplerate
    # Kaldi: sorted utterances list each speaker's together, in speaker order.
    order = [utt2spk[u] for u in sorted(utt2spk)]
    if order != sorted(order):
        raise ValueError(f"{corpus_dir}: speaker ids do not sort as their utterance ids do")
    check_disjoint(name, files, wav, utt2spk, own)

    tmp, old = out.with_name(f".{out.name}.tmp"), out.with_name(f".{out.name}.old")
    for d in (tmp, old):  # left by a killed run
        if d.exists():
            shutil.rmtree(d)
    write_data_dir(tmp, wav, None, utt2spk)
    write_lines(tmp / "utt2dur", (f"{u} {dur[u]!r}" for u in sorted(dur)))
    write_text(tmp / "source", opts + "\n")
    load_data_dir(tmp, require_text=False)
    mark_done(tmp)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
    return _summary(out)


def write_transfer_sets(data_dir, recipe_corpus: str, sources: Sequence[str],
                        corpora=SHARED_CORPORA, force: bool = False) -> list[str]:
    """data_dir/transfer_<source> for each of `sources` (read from corpora/<source>) for a
    recipe on `recipe_corpus` ("an4", "librispeech", "fsdd"); their summary lines."""
    data_dir, corpora = Path(data_dir), Path(corpora)
    for name in sources:
        if name not in SOURCES:
            raise ValueError(f"unknown transfer source '{name}' (known: {', '.join(SOURCES)})")
        if SOURCES[name].corpus == recipe_corpus:
            raise ValueError(f"transfer source {name} is {recipe_corpus} audio, the recipe's own "
                             f"corpus: transfer sets come from other corpora")
    own = own_sets(data_dir)
    return [write_transfer_set(name, corpora / name, data_dir / f"{PREFIX}{name}", own, force)
            for name in sources]


def command(recipe_corpus: str, sources: Sequence[str]) -> Command:
    """The `transfer` subcommand of a corpus module, its `--sources` defaulting to `sources`."""

    def add_args(p) -> None:
        p.add_argument("--data-dir", type=Path, default=Path("data"),
                       help="the recipe's data dir: transfer sets go in, its own are checked")
        p.add_argument("--sources", nargs="+", default=list(sources),
                       choices=[s for s, src in SOURCES.items() if src.corpus != recipe_corpus],
                       help=f"corpora to list (default: {' '.join(sources)})")
        p.add_argument("--corpora", type=Path, default=SHARED_CORPORA,
                       help="where the sources are, each in a dir of its name")
        p.add_argument("--force", action="store_true", help="redo even if .done markers exist")

    def run(data_dir, sources, corpora, force):
        return "\n".join(write_transfer_sets(data_dir, recipe_corpus, sources, corpora, force))

    return Command("write untranscribed audio of other corpora as data/transfer_<source>; "
                   "one summary line per dir", run, add_args)
