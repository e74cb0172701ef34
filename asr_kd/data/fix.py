"""Drop the utterances a validation found bad (Kaldi's utils/fix_data_dir.sh, made safe).

Every per-utterance, per-recording and per-speaker file is filtered to what is kept, sorted and
deduplicated, spk2utt is regenerated from utt2spk. The files as they were are first copied into
a new `<dir>/.backup[.N]/` (an earlier backup is never overwritten), with `dropped.txt` there
listing every dropped utterance and why; then each changed file is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from asr_kd.data.datadir import DataDirError
from asr_kd.data.validate import Validation

# Which id the first field of each file is (Kaldi's fix_data_dir.sh filters the same ones).
UTT_FILES = ("text", "utt2spk", "segments", "feats.scp", "utt2dur", "utt2num_frames",
             "utt2uniq", "vad.scp", "utt2warp")
SPK_FILES = ("cmvn.scp", "spk2gender", "spk2warp")
REC_FILES = ("wav.scp", "reco2dur", "reco2file_and_channel", "reco2speed")


def _filtered(path: Path, keep: set[str]) -> str:
    """The lines of `path` whose key is in `keep`, first of each key, sorted by key."""
    lines: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and fields[0] in keep:
            lines.setdefault(fields[0], line.rstrip() + "\n")
    return "".join(lines[k] for k in sorted(lines))


def _new_contents(v: Validation, kept: list[str]) -> dict[str, str]:
    d = v.datadir
    recs = {d.recording_of(u) for u in kept}
    spk2utt: dict[str, list[str]] = {}
    for u in kept:
        spk2utt.setdefault(d.utt2spk[u], []).append(u)
    keep = {**dict.fromkeys(UTT_FILES, set(kept)), **dict.fromkeys(SPK_FILES, set(spk2utt)),
            **dict.fromkeys(REC_FILES, recs)}
    new = {n: _filtered(d.path / n, ks) for n, ks in keep.items() if (d.path / n).is_file()}
    new["spk2utt"] = "".join(f"{s} {' '.join(spk2utt[s])}\n" for s in sorted(spk2utt))
    old = {n: (d.path / n).read_bytes() if (d.path / n).is_file() else None for n in new}
    return {n: text for n, text in new.items() if old[n] != text.encode("utf-8")}


def _free_backup_dir(path: Path) -> Path:
    n = 1
    while (b := path / (".backup" if n == 1 else f".backup.{n}")).exists():
        n += 1
    return b


def drop_bad(v: Validation) -> tuple[Path | None, list[str], dict[str, list[DataDirError]]]:
    """Rewrite `v.datadir` without the utterances `v` found bad.

    Returns (backup dir, or None when nothing had to change; the kept utterances; the dropped
    ones with their problems). Raises `DataDirError` and writes nothing if a problem cannot be
    fixed by dropping utterances or none would be left.
    """
    if v.fatal:
        more = f" (and {len(v.fatal) - 1} more)" if len(v.fatal) > 1 else ""
        raise DataDirError(f"{v.path}: dropping utterances cannot fix {v.fatal[0]}{more}")
    d, dropped = v.datadir, v.dropped()
    kept = [u for u in d.utts if u not in dropped]
    if not kept:
        raise DataDirError(f"{v.path}: every utterance has a problem; nothing would be left")
    new = _new_contents(v, kept)
    if not new:
        return None, kept, dropped
    report = [f"# asr-kd validate-data --drop-bad {d.path}: kept {len(kept)} of "
              f"{len(kept) + len(dropped)} utterances; the files it changed are here as they were"]
    report += [f"dropped {u}: {p}" for u, ps in dropped.items() for p in ps]
    report += [f"fixed: {p}" for p in v.problems if p.fix == "rewrite"]

    backup = _free_backup_dir(d.path)
    tmp = Path(tempfile.mkdtemp(prefix=".drop-bad.", dir=d.path))
    try:
        # Backup first, complete before its final name appears; then the new files.
        (tmp / "backup").mkdir()
        for name in new:
            if (d.path / name).is_file():
                shutil.copy2(d.path / name, tmp / "backup" / name)
        (tmp / "backup" / "dropped.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
        for name, text in new.items():
            (tmp / name).write_text(text, encoding="utf-8")
        os.rename(tmp / "backup", backup)
        for name in new:
            os.replace(tmp / name, d.path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return backup, kept, dropped
