"""What the local/<corpus>.py scripts share."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

from asr_kd.utils.archive import download, sha256sum
from asr_kd.utils.io import atomic_path


def fetch(url: str, dest, sha256: str | None, log: Callable[[str], None], why: str,
          progress: bool = True) -> Path:
    """`url` saved as `dest`, verified against `sha256` before it gets that name.

    Some sources publish no sha256 (a GitHub branch archive changes with every commit; OpenSLR
    lists only md5 sums for some resources): with `sha256` None the file is fetched as it is and
    its sha256 logged, with `why` saying why and how to pin it. Either way `dest` appears only
    once the whole file is there.
    """
    dest = Path(dest)
    if sha256:
        return download(url, dest, sha256, progress=progress)
    with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as resp:
        with open(tmp, "wb") as f:
            shutil.copyfileobj(resp, f)
    log(f"sha256 of {dest.name}: {sha256sum(dest)} (unverified: {why})")
    return dest
