"""Atomic file output and stage markers.

Every artifact is written under a temporary name in its final directory and renamed into place,
so a killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_lines(path: str | os.PathLike, lines) -> None:
    write_text(path, "".join(f"{line}\n" for line in lines))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path: str | os.PathLike, obj) -> None:
    """torch.save `obj` to `path` atomically (checkpoints, models). Through a file object:
    given a path, torch.save names the archive's top folder after the file, here the random
    temporary name, and equal objects would be saved as unequal bytes."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def is_done(out_dir: str | os.PathLike, name: str = "done") -> bool:
    """True if the stage that writes `out_dir` finished (its `.<name>` marker exists)."""
    return (Path(out_dir) / f".{name}").exists()


def mark_done(out_dir: str | os.PathLike, name: str = "done") -> None:
    """Mark a stage complete; call only after all its outputs are in place."""
    write_text(Path(out_dir) / f".{name}", "")


def clear_done(out_dir: str | os.PathLike, name: str = "done") -> None:
    """Forget that a stage finished, before it rewrites its outputs."""
    marker = Path(out_dir) / f".{name}"
    if marker.exists():
        marker.unlink()
