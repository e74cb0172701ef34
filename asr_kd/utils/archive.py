"""Downloading and unpacking corpus archives safely.

Downloads are verified against a sha256 before they appear under their final name, and
archives are checked member by member before anything is written, so a hostile or damaged
archive can neither write outside the target nor leave a half-extracted corpus behind.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

from asr_kd.utils.io import atomic_path

_CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks so large archives do not fill memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str, progress: bool = True) -> Path:
    """Fetch `url` to `dest`, verifying its sha256 before renaming it into place.

    If `dest` already exists with the right checksum nothing is fetched. On a mismatch the
    temporary file is removed and `dest` is left as it was.
    """
    if not sha256:
        raise ValueError(f"{url}: no sha256 given; refusing to download unverified data")
    exp = sha256.strip().lower()
    dest = Path(dest)
    if dest.is_file() and sha256sum(dest) == exp:
        return dest
    with atomic_path(dest) as tmp:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress and total:
                    pct = 100 * done // total
                    if pct // 10 != shown:
                        shown = pct // 10
                        print(
                            f"\r{dest.name}: {pct}% of {total / 1e6:.1f} MB",
                            end="",
                            file=sys.stderr,
                            flush=True,
                        )
            if progress and total:
                print(file=sys.stderr)
        got = h.hexdigest()
        if got != exp:
            raise ValueError(f"{url}: checksum mismatch: expected {exp}, got {got}")
    return dest


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + "/")


def _check_name(archive: Path, name: str) -> str:
    """Return the normalised member path, refusing absolute paths and `..` escapes."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"{archive}: member '{name}': absolute path refused")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"{archive}: member '{name}': path escapes the target directory")
    return norm


def _check_tar(archive: Path, members: list[tarfile.TarInfo]) -> None:
    for m in members:
        norm = _check_name(archive, m.name)
        if (
            m.ischr()
            or m.isblk()
            or m.isfifo()
            or not (m.isfile() or m.isdir() or m.issym() or m.islnk())
        ):
            raise ValueError(f"{archive}: member '{m.name}': device or special file refused")
        if m.issym() or m.islnk():
            link = m.linkname
            if link.startswith("/"):
                raise ValueError(
                    f"{archive}: member '{m.name}': link to absolute path '{link}' refused"
                )
            # Symlinks resolve from the member's directory, hard links from the archive root.
            base = posixpath.dirname(norm) if m.issym() else ""
            resolved = posixpath.normpath(posixpath.join("root", base, link))
            if not _inside("root", resolved):
                raise ValueError(
                    f"{archive}: member '{m.name}': link target '{link}' is "
                    "outside the target directory"
                )


def _check_zip(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        _check_name(archive, info.filename)


def _install(tmp: Path, target: Path) -> None:
    """Move the extracted tree into `target`, replacing entries of the same name."""
    if not target.exists():
        os.replace(tmp, target)
        return
    for entry in tmp.iterdir():
        dst = target / entry.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        elif dst.exists() or dst.is_symlink():
            dst.unlink()
        os.replace(entry, dst)


def safe_extract(archive_path: str | os.PathLike, target_dir: str | os.PathLike) -> Path:
    """Extract a tar (plain/gz/bz2/xz) or zip archive into `target_dir` after vetting it.

    Refuses absolute member paths, `..` escapes, links pointing outside the target and device
    files, raising ValueError naming the archive and member. Extraction happens in a temporary
    directory beside the target that is renamed into place only once everything succeeded.
    """
    archive, target = Path(archive_path), Path(target_dir)
    if not archive.is_file():
        raise ValueError(f"{archive}: archive does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract.", dir=target.parent))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    infos = zf.infolist()
                    _check_zip(archive, infos)
                    zf.extractall(tmp)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    members = tf.getmembers()  # reads every header: finds most truncation
                    _check_tar(archive, members)
                    if hasattr(tarfile, "data_filter"):  # stdlib's own guard, where available
                        tf.extractall(tmp, members=members, filter="data")
                    else:
                        tf.extractall(tmp, members=members)
        except ValueError:
            raise
        except (
            tarfile.TarError,
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            lzma.LZMAError,
            OSError,
        ) as e:
            raise ValueError(
                f"{archive}: cannot extract (damaged or truncated archive?): "
                f"{type(e).__name__}: {e}"
            ) from None
        _install(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
