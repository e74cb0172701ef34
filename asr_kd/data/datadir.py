"""Kaldi data directories: parse, validate and write.

A data dir holds `wav.scp` (`<rec> <path>` or `<rec> <command> |`), `text` (`<utt> WORD...`),
`utt2spk`, `spk2utt` and optionally `segments` (`<utt> <rec> <start_s> <end_s>`). Without
`segments` every utterance is a whole recording, so utterance and recording ids coincide.

Every validation error is a `DataDirError` that names the file, the line and the utterance (or
speaker), so a broken corpus preparation can be fixed without guessing where the problem is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from asr_kd.utils.io import write_lines


class DataDirError(ValueError):
    """A data directory that violates Kaldi's format or consistency rules."""


def _err(
    path: Path,
    lineno: int | None,
    problem: str,
    utt: str | None = None,
    spk: str | None = None,
    rec: str | None = None,
) -> DataDirError:
    where = f"{path}:{lineno}" if lineno is not None else f"{path}"
    if utt is not None:
        where += f": utterance '{utt}'"
    elif spk is not None:
        where += f": speaker '{spk}'"
    elif rec is not None:
        where += f": recording '{rec}'"
    return DataDirError(f"{where}: {problem}")


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
    # Line of each recording in wav.scp, so audio errors found later can still point at it.
    wav_lines: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def utts(self) -> list[str]:
        return sorted(self.utt2spk)

    def recording_of(self, utt: str) -> str:
        if self.segments is not None:
            return self.segments[utt][0]
        return utt


def _read_table(path: Path, label: str, min_fields: int) -> dict[str, tuple[int, list[str]]]:
    """Read `<key> fields...` lines; check blank lines, field counts, duplicates and byte order.

    Python compares str by code point, which for UTF-8 is the same as byte order (LC_ALL=C sort).
    """
    entries: dict[str, tuple[int, list[str]]] = {}
    prev = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                raise _err(path, lineno, "empty line")
            key, rest = fields[0], fields[1:]
            kw = {label: key}
            if key in entries:
                raise _err(path, lineno, f"duplicate key (first on line {entries[key][0]})", **kw)
            if prev is not None and key < prev:
                raise _err(
                    path,
                    lineno,
                    f"not sorted (keys must be in byte order; previous key '{prev}')",
                    **kw,
                )
            if len(rest) < min_fields:
                raise _err(
                    path,
                    lineno,
                    f"expected at least {min_fields + 1} fields, got {len(fields)}",
                    **kw,
                )
            entries[key] = (lineno, rest)
            prev = key
    return entries


def _require(path: Path) -> Path:
    if not path.is_file():
        raise _err(path, None, "file does not exist")
    return path


def load_data_dir(
    path, allow_pipes: bool = False, require_text: bool = True, check_audio_exists: bool = True
) -> DataDir:
    """Parse and validate a data directory; raise `DataDirError` on the first problem."""
    path = Path(path)
    if not path.is_dir():
        raise _err(path, None, "data directory does not exist")
    wav_p, text_p = path / "wav.scp", path / "text"
    u2s_p, s2u_p, seg_p = path / "utt2spk", path / "spk2utt", path / "segments"
    has_seg = seg_p.is_file()
    wav_label = "rec" if has_seg else "utt"

    # wav.scp: one path, or a shell command ending in '|'.
    wav_t = _read_table(_require(wav_p), wav_label, 1)
    wav: dict[str, str] = {}
    for key, (ln, rest) in wav_t.items():
        kw = {wav_label: key}
        spec = " ".join(rest)
        if is_pipe(spec):
            if not allow_pipes:
                raise _err(
                    wav_p, ln, "wav.scp entry is a shell pipe; pass --allow-pipes to run it", **kw
                )
        elif len(rest) != 1:
            raise _err(
                wav_p, ln, "expected '<recording> <path>' or '<recording> <command> |'", **kw
            )
        elif check_audio_exists and not Path(spec).is_file():
            raise _err(wav_p, ln, f"audio file '{spec}' does not exist", **kw)
        wav[key] = spec

    u2s_t = _read_table(_require(u2s_p), "utt", 1)
    utt2spk: dict[str, str] = {}
    for utt, (ln, rest) in u2s_t.items():
        if len(rest) != 1:
            raise _err(u2s_p, ln, "expected '<utterance> <speaker>'", utt=utt)
        utt2spk[utt] = rest[0]

    s2u_t = _read_table(_require(s2u_p), "spk", 1)
    spk2utt = {spk: rest for spk, (_, rest) in s2u_t.items()}
    for spk, (ln, utts) in s2u_t.items():
        seen = set()
        for utt in utts:
            if utt in seen:
                raise _err(s2u_p, ln, f"utterance '{utt}' listed twice", spk=spk)
            seen.add(utt)
            if utt not in utt2spk:
                raise _err(s2u_p, ln, f"utterance '{utt}' is not in utt2spk", spk=spk)
            if utt2spk[utt] != spk:
                raise _err(
                    s2u_p,
                    ln,
                    f"utterance '{utt}' belongs to speaker '{utt2spk[utt]}' in utt2spk",
                    spk=spk,
                )
    for utt, (ln, _) in u2s_t.items():
        spk = utt2spk[utt]
        if spk not in spk2utt:
            raise _err(u2s_p, ln, f"speaker '{spk}' is not in spk2utt", utt=utt)
        if utt not in spk2utt[spk]:
            raise _err(u2s_p, ln, f"not listed under speaker '{spk}' in spk2utt", utt=utt)

    text: dict[str, list[str]] = {}
    if text_p.is_file():
        for utt, (ln, words) in _read_table(text_p, "utt", 0).items():
            if not words:
                raise _err(text_p, ln, "empty transcript", utt=utt)
            if utt not in utt2spk:
                raise _err(text_p, ln, "no speaker in utt2spk", utt=utt)
            text[utt] = words
        if require_text:
            for utt, (ln, _) in u2s_t.items():
                if utt not in text:
                    raise _err(u2s_p, ln, "no transcript in text", utt=utt)
    elif require_text:
        raise _err(text_p, None, "file does not exist")

    segments = None
    if has_seg:
        segments = {}
        for utt, (ln, rest) in _read_table(seg_p, "utt", 3).items():
            if len(rest) != 3:
                raise _err(seg_p, ln, "expected '<utterance> <recording> <start> <end>'", utt=utt)
            rec = rest[0]
            try:
                start, end = float(rest[1]), float(rest[2])
            except ValueError:
                raise _err(
                    seg_p, ln, f"times '{rest[1]}' '{rest[2]}' are not numbers", utt=utt
                ) from None
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
                raise _err(seg_p, ln, f"invalid times {rest[1]} {rest[2]}", utt=utt)
            if end <= start:
                raise _err(
                    seg_p, ln, f"segment end {rest[2]} is not after start {rest[1]}", utt=utt
                )
            if rec not in wav:
                raise _err(seg_p, ln, f"recording '{rec}' is not in wav.scp", utt=utt)
            if utt not in utt2spk:
                raise _err(seg_p, ln, "no speaker in utt2spk", utt=utt)
            segments[utt] = (rec, start, end)
        for utt, (ln, _) in u2s_t.items():
            if utt not in segments:
                raise _err(u2s_p, ln, "no entry in segments", utt=utt)
    else:
        # Whole-recording utterances: utt2spk and wav.scp must list the same ids.
        for utt, (ln, _) in u2s_t.items():
            if utt not in wav:
                raise _err(u2s_p, ln, "no recording in wav.scp", utt=utt)
        for utt, (ln, _) in wav_t.items():
            if utt not in utt2spk:
                raise _err(wav_p, ln, "no speaker in utt2spk", utt=utt)

    return DataDir(
        path=path,
        wav=wav,
        text=text,
        utt2spk=utt2spk,
        spk2utt=spk2utt,
        segments=segments,
        wav_lines={k: ln for k, (ln, _) in wav_t.items()},
    )


def write_data_dir(
    path,
    wav: dict[str, str],
    text: dict[str, list[str] | str] | None,
    utt2spk: dict[str, str],
    segments: dict[str, tuple[str, float, float]] | None = None,
) -> None:
    """Write a data dir in byte order, deriving spk2utt; each file is replaced atomically.

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
