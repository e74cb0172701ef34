"""Kaldi data directories: parse, validate and write.

A data dir holds `wav.scp` (`<rec> <path>` or `<rec> <command> |`), `text` (`<utt> WORD...`),
`utt2spk`, `spk2utt` and optionally `segments` (`<utt> <rec> <start_s> <end_s>`). Without
`segments` every utterance is a whole recording, so utterance and recording ids coincide.
A speed-perturbed dir (`asr-kd perturb-speed`) also has `reco2speed` (`<rec> <factor>`): that
recording is read at that speed, and its segments are times on the perturbed axis. Kaldi's VTLN
files, `spk2warp` (`<spk> <factor>`, as `asr-kd perturb-vtln` writes) or else `utt2warp`, give
the warp factor of the mel filterbank for a speaker's or an utterance's features (1 if unlisted).

Every validation error is a `DataDirError` that names the file, the line and the utterance (or
speaker), so a broken corpus preparation can be fixed without guessing where the problem is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from asr_kd.utils.io import write_lines


class DataDirError(ValueError):
    """A data directory that violates Kaldi's format or consistency rules.

    `kind`/`key` name what it is about (an "utt", "rec" or "spk" id, or None); `fix` is what
    `validate-data --drop-bad` does about it: "drop" the utterances of that key, "rewrite" (the
    files are written again sorted, deduplicated, spk2utt regenerated), or None: no fix.
    """

    def __init__(self, message: str, kind: str | None = None, key: str | None = None,
                 fix: str | None = None):
        super().__init__(message)
        self.kind, self.key, self.fix = kind, key, fix


# A speaker's problems are spk2utt's, which is written again from utt2spk; a problem with no
# utterance, recording or speaker (a missing file) has no fix.
_DEFAULT_FIX = {"utt": "drop", "rec": "drop", "spk": "rewrite", None: None}


def data_error(
    path: Path,
    lineno: int | None,
    problem: str,
    utt: str | None = None,
    spk: str | None = None,
    rec: str | None = None,
    fix: str | None = "default",
) -> DataDirError:
    where = f"{path}:{lineno}" if lineno is not None else f"{path}"
    kind, key = next(((k, v) for k, v in (("utt", utt), ("spk", spk), ("rec", rec))
                      if v is not None), (None, None))
    if key is not None:
        where += f": {dict(utt='utterance', spk='speaker', rec='recording')[kind]} '{key}'"
    return DataDirError(f"{where}: {problem}", kind, key,
                        _DEFAULT_FIX[kind] if fix == "default" else fix)


def raise_problem(err: DataDirError) -> None:
    """The strict way to report a problem: stop at the first (what the stages do)."""
    raise err


def raise_first(problems) -> None:
    """Raise the first problem an iterable of `DataDirError`s yields, if any."""
    for err in problems:
        raise err


def is_pipe(spec: str) -> bool:
    """True for a wav.scp value of the form `<command> |` (Kaldi's rxfilename pipe)."""
    return spec.rstrip().endswith("|")


@dataclass
class DataDir:
    """A loaded, validated data directory."""

    path: Path
    wav: dict[str, str]
    text: dict[str, list[str]]
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    segments: dict[str, tuple[str, float, float]] | None = None
    # Speed factor of each perturbed recording (reco2speed); a recording not listed is at 1.
    reco2speed: dict[str, float] = field(default_factory=dict)
    # VTLN warp factor of each utterance (from spk2warp or utt2warp); unlisted: 1.
    utt2warp: dict[str, float] = field(default_factory=dict)
    # Line of each key per file ("wav.scp", "text", "utt2spk", ...), so problems found later
    # (audio, words, features) can still point at it.
    lines: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    @property
    def utts(self) -> list[str]:
        return sorted(self.utt2spk)

    def recording_of(self, utt: str) -> str:
        if self.segments is not None:
            return self.segments[utt][0]
        return utt

    def speed_of(self, rec: str) -> float:
        return self.reco2speed.get(rec, 1.0)

    def warp_of(self, utt: str) -> float:
        return self.utt2warp.get(utt, 1.0)

    def line(self, name: str, key: str) -> int | None:
        """The line of `key` in file `name` (None if it has none there)."""
        return self.lines.get(name, {}).get(key)


def read_table(
    path: Path, label: str, min_fields: int, report=raise_problem, fix: str = "default"
) -> dict[str, tuple[int, list[str]]]:
    """Read `<key> fields...` lines; check blank lines, field counts, duplicates and byte order.

    Python compares str by code point, which for UTF-8 is the same as byte order (LC_ALL=C sort).
    A line with a problem is left out (the first of duplicates is kept), except unsorted ones.
    """
    entries: dict[str, tuple[int, list[str]]] = {}
    prev = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                report(data_error(path, lineno, "empty line", fix="rewrite"))
                continue
            key, rest = fields[0], fields[1:]
            kw = {label: key, "fix": fix}
            if key in entries:
                report(data_error(path, lineno, f"duplicate key (first on line {entries[key][0]})",
                            **kw))
                continue
            if prev is not None and key < prev:
                report(data_error(
                    path,
                    lineno,
                    f"not sorted (keys must be in byte order; previous key '{prev}')",
                    **{label: key, "fix": "rewrite"},
                ))
            if len(rest) < min_fields:
                report(data_error(
                    path,
                    lineno,
                    f"expected at least {min_fields + 1} fields, got {len(fields)}",
                    **kw,
                ))
                continue
            entries[key] = (lineno, rest)
            prev = key
    return entries


def _require(path: Path) -> Path:
    if not path.is_file():
        raise data_error(path, None, "file does not exist")
    return path


def _audio_file_problem(spec: str) -> str | None:
    p = Path(spec)
    if not p.exists():
        return f"audio file '{spec}' does not exist"
    if not p.is_file():
        return f"audio file '{spec}' is not a regular file"
    try:
        p.open("rb").close()
    except OSError as e:
        return f"audio file '{spec}' cannot be read: {e.strerror}"
    return None


def _parse_segment(rest: list[str], recs) -> tuple[str, float, float] | str:
    """(recording, start, end) of a segments line, or what is wrong with it."""
    if len(rest) != 3:
        return "expected '<utterance> <recording> <start> <end>'"
    rec, s, e = rest
    try:
        start, end = float(s), float(e)
    except ValueError:
        return f"times '{s}' '{e}' are not numbers"
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        return f"invalid times {s} {e}"
    if end <= start:
        return f"segment end {e} is not after start {s}"
    if rec not in recs:
        return f"recording '{rec}' is not in wav.scp"
    return rec, start, end


def _parse_factor(rest: list[str], key: str, name: str) -> float | str:
    """The factor of a reco2speed (`name` speed) or spk2warp/utt2warp (warp) line, or what is
    wrong with it."""
    if len(rest) != 1:
        return f"expected '<{key}> <{name} factor>'"
    try:
        factor = float(rest[0])
    except ValueError:
        return f"{name} '{rest[0]}' is not a number"
    if not (math.isfinite(factor) and factor > 0):
        return f"{name} {rest[0]} is not a positive number"
    return factor


def load_data_dir(
    path,
    allow_pipes: bool = False,
    require_text: bool = True,
    check_audio_exists: bool = True,
    report=raise_problem,
) -> DataDir:
    """Parse and validate a data directory; raise `DataDirError` on the first problem.

    With another `report` (called with each `DataDirError`), every problem is reported and the
    entries with problems are left out of what is returned. A missing data dir, wav.scp,
    utt2spk or (with `require_text`) text is raised whatever `report` is: nothing else can be
    checked without them.
    """
    path = Path(path)
    if not path.is_dir():
        raise data_error(path, None, "data directory does not exist")
    wav_p, text_p = path / "wav.scp", path / "text"
    u2s_p, s2u_p, seg_p = path / "utt2spk", path / "spk2utt", path / "segments"
    speed_p = path / "reco2speed"
    has_seg = seg_p.is_file()
    wav_label = "rec" if has_seg else "utt"

    # wav.scp: one path, or a shell command ending in '|'.
    wav_t = read_table(_require(wav_p), wav_label, 1, report)
    wav: dict[str, str] = {}
    for key, (ln, rest) in wav_t.items():
        kw = {wav_label: key}
        spec = " ".join(rest)
        problem = None
        if is_pipe(spec):
            if not allow_pipes:
                problem = "wav.scp entry is a shell pipe; pass --allow-pipes to run it"
        elif len(rest) != 1:
            problem = "expected '<recording> <path>' or '<recording> <command> |'"
        elif check_audio_exists:
            problem = _audio_file_problem(spec)
        if problem:
            report(data_error(wav_p, ln, problem, **kw))
            continue
        wav[key] = spec

    u2s_t = read_table(_require(u2s_p), "utt", 1, report)
    utt2spk: dict[str, str] = {}
    for utt, (ln, rest) in u2s_t.items():
        if len(rest) != 1:
            report(data_error(u2s_p, ln, "expected '<utterance> <speaker>'", utt=utt))
            continue
        utt2spk[utt] = rest[0]

    # spk2utt only restates utt2spk, so its problems are fixed by writing it again.
    has_s2u = s2u_p.is_file()
    s2u_t = read_table(s2u_p, "spk", 1, report) if has_s2u else {}
    if not has_s2u:
        report(data_error(s2u_p, None, "file does not exist", fix="rewrite"))
    spk2utt = {spk: rest for spk, (_, rest) in s2u_t.items()}
    for spk, (ln, utts) in s2u_t.items():
        seen = set()
        for utt in utts:
            if utt in seen:
                report(data_error(s2u_p, ln, f"utterance '{utt}' listed twice", spk=spk))
            elif utt not in u2s_t:
                report(data_error(s2u_p, ln, f"utterance '{utt}' is not in utt2spk", spk=spk))
            elif utt2spk.get(utt, spk) != spk:
                report(data_error(
                    s2u_p,
                    ln,
                    f"utterance '{utt}' belongs to speaker '{utt2spk[utt]}' in utt2spk",
                    spk=spk,
                ))
            seen.add(utt)
    for utt, (ln, _) in u2s_t.items():
        spk = utt2spk.get(utt)
        if spk is None or not has_s2u:
            continue
        if spk not in spk2utt:
            report(data_error(u2s_p, ln, f"speaker '{spk}' is not in spk2utt", utt=utt,
                              fix="rewrite"))
        elif utt not in spk2utt[spk]:
            report(data_error(u2s_p, ln, f"not listed under speaker '{spk}' in spk2utt", utt=utt,
                        fix="rewrite"))

    text: dict[str, list[str]] = {}
    text_t = {}
    if text_p.is_file():
        text_t = read_table(text_p, "utt", 0, report)
        for utt, (ln, words) in text_t.items():
            if not words:
                report(data_error(text_p, ln, "empty transcript", utt=utt))
            elif utt not in u2s_t:
                report(data_error(text_p, ln, "no speaker in utt2spk", utt=utt))
            else:
                text[utt] = words
        if require_text:
            for utt, (ln, _) in u2s_t.items():
                if utt not in text_t:
                    report(data_error(u2s_p, ln, "no transcript in text", utt=utt))
    elif require_text:
        raise data_error(text_p, None, "file does not exist")

    segments = None
    seg_t = {}
    if has_seg:
        segments = {}
        seg_t = read_table(seg_p, "utt", 3, report)
        for utt, (ln, rest) in seg_t.items():
            seg = _parse_segment(rest, wav_t)
            if isinstance(seg, str) or utt not in u2s_t:
                problem = seg if isinstance(seg, str) else "no speaker in utt2spk"
                report(data_error(seg_p, ln, problem, utt=utt))
                continue
            segments[utt] = seg
        for utt, (ln, _) in u2s_t.items():
            if utt not in seg_t:
                report(data_error(u2s_p, ln, "no entry in segments", utt=utt))
    else:
        # Whole-recording utterances: utt2spk and wav.scp must list the same ids.
        for utt, (ln, _) in u2s_t.items():
            if utt not in wav_t:
                report(data_error(u2s_p, ln, "no recording in wav.scp", utt=utt))
        for utt, (ln, _) in wav_t.items():
            if utt not in u2s_t:
                report(data_error(wav_p, ln, "no speaker in utt2spk", utt=utt))

    # reco2speed: a recording with a bad speed is left out of `wav`, so that nothing reads it
    # at the wrong speed.
    reco2speed: dict[str, float] = {}
    speed_t = read_table(speed_p, wav_label, 1, report) if speed_p.is_file() else {}
    for key, (ln, rest) in speed_t.items():
        speed = _parse_factor(rest, "recording", "speed")
        if isinstance(speed, str):
            report(data_error(speed_p, ln, speed, **{wav_label: key}))
            wav.pop(key, None)
        elif key not in wav_t:
            report(data_error(speed_p, ln, "recording is not in wav.scp", fix="rewrite",
                              **{wav_label: key}))
        else:
            reco2speed[key] = speed

    # VTLN warps: spk2warp if there is one, else utt2warp (Kaldi's make_fbank.sh does so). As
    # with a bad speed, the recordings of a bad line leave `wav`: none is read at a wrong warp.
    per_spk = (path / "spk2warp").is_file()
    warp_p = path / ("spk2warp" if per_spk else "utt2warp")
    label, what = ("spk", "speaker") if per_spk else ("utt", "utterance")
    owners = set(utt2spk.values()) if per_spk else set(utt2spk)
    warp_t = read_table(warp_p, label, 1, report) if warp_p.is_file() else {}
    warps: dict[str, float] = {}
    bad = set()
    for key, (ln, rest) in warp_t.items():
        warp = _parse_factor(rest, what, "warp")
        if isinstance(warp, str):
            report(data_error(warp_p, ln, warp, fix="drop", **{label: key}))
            bad.add(key)
        elif key not in owners:
            report(data_error(warp_p, ln, f"{what} is not in utt2spk", fix="rewrite",
                              **{label: key}))
        elif warp != 1.0:
            warps[key] = warp
    utt2warp = {}
    for utt, spk in utt2spk.items():
        key = spk if per_spk else utt
        if key in bad:
            wav.pop(segments[utt][0] if segments and utt in segments else utt, None)
        elif key in warps:
            utt2warp[utt] = warps[key]

    tables = {"wav.scp": wav_t, "utt2spk": u2s_t, "spk2utt": s2u_t, "text": text_t,
              "segments": seg_t, "reco2speed": speed_t, warp_p.name: warp_t}
    return DataDir(
        path=path,
        wav=wav,
        text=text,
        utt2spk=utt2spk,
        spk2utt=spk2utt,
        segments=segments,
        reco2speed=reco2speed,
        utt2warp=utt2warp,
        lines={name: {k: ln for k, (ln, _) in t.items()} for name, t in tables.items()},
    )


def write_data_dir(
    path,
    wav: dict[str, str],
    text: dict[str, list[str] | str] | None,
    utt2spk: dict[str, str],
    segments: dict[str, tuple[str, float, float]] | None = None,
    reco2speed: dict[str, float] | None = None,
) -> None:
    """Write a data dir in byte order, deriving spk2utt; each file is replaced atomically.

    `segments` and `reco2speed` are written if given (and, reco2speed, not empty); otherwise
    an old file of that name is removed.

    Utterance ids must start with their speaker id: then sorting by utterance also groups by
    speaker, which Kaldi's per-speaker tools (CMVN, spk2utt) rely on.
    """
    path = Path(path)
    for utt, spk in utt2spk.items():
        if not utt.startswith(spk):
            raise DataDirError(
                f"{path / 'utt2spk'}: utterance '{utt}': does not start with "
                f"its speaker id '{spk}' (Kaldi requires this prefix)"
            )
    for name, table in (
        ("wav.scp", wav),
        ("text", text or {}),
        ("utt2spk", utt2spk),
        ("segments", segments or {}),
        ("reco2speed", reco2speed or {}),
    ):
        for key in table:
            if not key or any(c.isspace() for c in key):
                raise DataDirError(f"{path / name}: key {key!r} is empty or contains whitespace")
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)

    path.mkdir(parents=True, exist_ok=True)
    write_lines(path / "wav.scp", (f"{k} {wav[k]}" for k in sorted(wav)))
    if text is not None:
        write_lines(
            path / "text",
            (
                f"{k} {text[k] if isinstance(text[k], str) else ' '.join(text[k])}"
                for k in sorted(text)
            ),
        )
    write_lines(path / "utt2spk", (f"{k} {utt2spk[k]}" for k in sorted(utt2spk)))
    write_lines(path / "spk2utt", (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    if segments is not None:
        # repr() of a float is the shortest exact form, so times round-trip unchanged.
        write_lines(
            path / "segments",
            (
                f"{k} {segments[k][0]} {float(segments[k][1])!r} {float(segments[k][2])!r}"
                for k in sorted(segments)
            ),
        )
    elif (path / "segments").exists():
        (path / "segments").unlink()  # a stale segments file would change every utterance
    if reco2speed:
        write_lines(path / "reco2speed",
                    (f"{k} {float(reco2speed[k])!r}" for k in sorted(reco2speed)))
    elif (path / "reco2speed").exists():
        (path / "reco2speed").unlink()  # and a stale speed every utterance of its recording
