"""Every check of a data dir in one pass, collecting all problems (`asr-kd validate-data`).

Each check is one generator of `DataDirError`s that names the file, the line and the utterance
(or speaker); the stages run the same generators and stop at the first problem (`raise_first`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import kaldiio
import numpy as np

from asr_kd.data.audio import iter_utterance_audio
from asr_kd.data.datadir import DataDir, DataDirError, data_error, load_data_dir, read_table


def oov_problems(d: DataDir, lang_dir) -> Iterator[DataDirError]:
    """Transcript words missing from the lang's words.txt.

    Our lang dirs have no OOV word to map them to (Kaldi's oov.txt): training and alignment
    look every word up in words.txt, so each one missing is a problem.
    """
    from asr_kd.utils.fst import read_symbols

    words_p = Path(lang_dir) / "words.txt"
    if not words_p.is_file():
        yield data_error(words_p, None, "file does not exist")
        return
    words = read_symbols(words_p)
    for utt in sorted(d.text):
        for w in dict.fromkeys(d.text[utt]):
            if w not in words:
                yield data_error(d.path / "text", d.line("text", utt),
                           f"word '{w}' is not in {words_p}", utt=utt)


def _scp(path: Path, label: str, found: list) -> dict[str, tuple[int, list[str]]]:
    return read_table(path, label, 1, found.append)


def _load_mat(rest: list[str]) -> np.ndarray | str:
    """The matrix an scp line points at, or why it cannot be read."""
    try:
        return np.asarray(kaldiio.load_mat(" ".join(rest)))
    except Exception as e:  # kaldiio raises anything from OSError to ValueError
        return f"cannot read '{' '.join(rest)}': {e}"


def feats_problems(d: DataDir, frames: dict[str, int] | None = None,
                   mats: dict[str, np.ndarray] | None = None) -> Iterator[DataDirError]:
    """feats.scp and cmvn.scp against the data dir: every utterance has readable features with
    no NaN/Inf, every speaker finite CMVN stats. `frames` and `mats`, if given, get each good
    utterance's number of frames and its matrix (read once: the stages keep them)."""
    feats_p, cmvn_p = d.path / "feats.scp", d.path / "cmvn.scp"
    for p, what in ((feats_p, "features"), (cmvn_p, "CMVN stats")):
        if not p.is_file():
            yield data_error(p, None, f"no {what}; run the feats stage first")
            return
    found: list[DataDirError] = []
    feats_t, cmvn_t = _scp(feats_p, "utt", found), _scp(cmvn_p, "spk", found)
    yield from found
    for utt, (ln, _) in feats_t.items():
        if utt not in d.utt2spk:
            yield data_error(feats_p, ln, "no speaker in utt2spk", utt=utt, fix="rewrite")
    for utt in d.utts:
        if utt not in feats_t:
            yield data_error(d.path / "utt2spk", d.line("utt2spk", utt), "no features in feats.scp",
                       utt=utt)
            continue
        ln, rest = feats_t[utt]
        x = _load_mat(rest)
        if isinstance(x, str):
            yield data_error(feats_p, ln, x, utt=utt)
            continue
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        if len(bad):
            yield data_error(feats_p, ln, f"{len(bad)} of {len(x)} frames have NaN or Inf (the "
                       f"first is frame {bad[0]}, counting from 0)", utt=utt)
        else:
            if frames is not None:
                frames[utt] = len(x)
            if mats is not None:
                mats[utt] = x
    # A speaker's utterances cannot be normalised without finite stats.
    for spk in dict.fromkeys(d.utt2spk[u] for u in d.utts):
        if spk not in cmvn_t:
            yield data_error(d.path / "spk2utt", d.line("spk2utt", spk),
                             "no CMVN stats in cmvn.scp", spk=spk, fix="drop")
            continue
        ln, rest = cmvn_t[spk]
        st = _load_mat(rest)
        if isinstance(st, str) or not np.isfinite(st).all():
            yield data_error(cmvn_p, ln, st if isinstance(st, str) else "NaN or Inf in CMVN stats",
                       spk=spk, fix="drop")


def alignment_problems(d: DataDir, ali: Mapping[str, np.ndarray], ali_path,
                       frames: Mapping[str, int]) -> Iterator[DataDirError]:
    """Utterances whose alignment and features differ in length (one target per frame).

    An utterance with no alignment is not a problem: alignment may fail for a few, and the
    stages leave those out.
    """
    found: list[DataDirError] = []
    feats_p = d.path / "feats.scp"
    lines = _scp(feats_p, "utt", found)
    for utt in sorted(frames.keys() & ali.keys()):
        if len(ali[utt]) != frames[utt]:
            yield data_error(feats_p, lines[utt][0] if utt in lines else None,
                       f"{frames[utt]} frames of features but {len(ali[utt])} in {ali_path}",
                       utt=utt)


@dataclass
class Validation:
    """What `validate_data_dir` found. `datadir` is None if the dir could not be parsed."""

    path: Path
    datadir: DataDir | None
    problems: list[DataDirError] = field(default_factory=list)
    audio_read: int = 0

    @property
    def fatal(self) -> list[DataDirError]:
        """Problems that dropping utterances cannot fix."""
        return [p for p in self.problems if p.fix is None]

    def dropped(self) -> dict[str, list[DataDirError]]:
        """{utterance: the problems that drop it}, sorted by utterance."""
        d, out = self.datadir, {}
        for p in self.problems:
            if p.fix != "drop":
                continue
            if p.kind == "utt":
                utts = [p.key]
            elif p.kind == "spk":
                utts = [u for u in d.utts if d.utt2spk[u] == p.key]
            else:  # a recording of a dir with segments
                utts = [u for u, seg in (d.segments or {}).items() if seg[0] == p.key]
            for u in utts:
                out.setdefault(u, []).append(p)
        return dict(sorted(out.items()))


def validate_data_dir(
    path,
    allow_pipes: bool = False,
    require_text: bool = True,
    sample_rate: int | None = None,
    resample: bool = False,
    lang_dir=None,
    ali_dir=None,
) -> Validation:
    """Run every check on a data dir and collect all problems (none raised): the files and
    their consistency, the audio (readable, mono, not empty, at `sample_rate` unless
    `resample`), the words (with `lang_dir`), features (if feats.scp exists or `ali_dir` is
    given) and alignment lengths (with `ali_dir`, its ali.ark)."""
    v = Validation(Path(path), None)
    try:
        d = v.datadir = load_data_dir(path, allow_pipes=allow_pipes, require_text=require_text,
                                      report=v.problems.append)
    except DataDirError as e:  # a missing file: nothing else can be checked
        v.problems.append(e)
        return v
    # Audio of the utterances whose recording entry is usable (the others are reported already).
    ok = {u: s for u, s in d.utt2spk.items()
          if (d.segments is None or u in d.segments) and d.recording_of(u) in d.wav}
    for _ in iter_utterance_audio(dataclasses.replace(d, utt2spk=ok), allow_pipes, sample_rate,
                                  resample, v.problems.append):
        v.audio_read += 1
    if lang_dir is not None:
        v.problems += oov_problems(d, lang_dir)
    if (d.path / "feats.scp").exists() or ali_dir is not None:
        frames: dict[str, int] = {}
        v.problems += feats_problems(d, frames)
        if ali_dir is not None:
            ali_p = Path(ali_dir) / "ali.ark"
            try:
                ali = dict(kaldiio.load_ark(str(ali_p)))
            except Exception as e:  # missing or corrupt archive
                v.problems.append(data_error(ali_p, None, f"cannot read alignments: {e}"))
            else:
                v.problems += alignment_problems(d, ali, ali_p, frames)
    return v
