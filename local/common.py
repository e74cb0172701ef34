"""What the corpus modules of `local` share: their log, where the shared corpora are, fetching
and unpacking archives."""

from __future__ import annotations

import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from asr_kd.utils.archive import download, safe_extract, sha256sum
from asr_kd.utils.io import atomic_path

# The shared, read-only corpora beside the checkout (<repo>/../shared/corpora).
SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def logger(corpus: str) -> Callable[[str], None]:
    """`log(msg)`: `corpus: msg` on stderr (stdout carries only what a command prints)."""

    def log(msg: str) -> None:
        print(f"{corpus}: {msg}", file=sys.stderr)

    return log


def fetch(url: str, dest, sha256: str | None, log: Callable[[str], None], why: str,
          progress: bool = True) -> Path:
    """`url` saved as `dest`, verified against `sha256` before it gets that name.

    Some sources publish no sha256 (a GitHub branch archive changes with every commit; OpenSLR
    lists only md5 sums for some resources): with `sha256` None the file is fetched as it is and
    its sha256 logged, with `why` saying why and how to pin it. Either way `dest` appears only
    once the whole file is there. A server that cannot be reached or answers with an error is a
    ValueError naming `url`.
    """
    dest = Path(dest)
    try:
        if sha256:
            return download(url, dest, sha256, progress=progress)
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as resp:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(resp, f)
    except urllib.error.HTTPError as e:
        raise ValueError(f"{url}: cannot download: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise ValueError(f"{url}: cannot download: {e.reason}") from None
    log(f"sha256 of {dest.name}: {sha256sum(dest)} (unverified: {why})")
    return dest


def remove_if_empty(*dirs: Path) -> None:
    """Remove each of `dirs` that is an empty directory, in order (children first)."""
    for d in dirs:
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


@contextmanager
def unpacked(url: str, archive, sha256: str | None, log: Callable[[str], None], why: str,
             progress: bool = True) -> Iterator[Path]:
    """`url` fetched to `archive` (see `fetch`) and unpacked by `safe_extract` into a hidden
    directory beside it, which is yielded: move what is kept out of it.

    Afterwards, however the block ended, the archive and what is left of the unpacked tree are
    removed (the unpacked corpus is what counts; the archive would double the disk used), and
    so is the archive's directory if this call created it and it is left empty: a failed
    download leaves nothing behind.
    """
    archive = Path(archive)
    unpack = archive.with_name(f".{archive.name}.unpack")
    created = not archive.parent.exists()
    try:
        log(f"downloading {url}")
        fetch(url, archive, sha256, log, why, progress=progress)
        if unpack.exists():  # left by a killed run
            shutil.rmtree(unpack)
        safe_extract(archive, unpack)
        yield unpack
    finally:
        archive.unlink(missing_ok=True)
        if unpack.exists():
            shutil.rmtree(unpack)
        if created:
            remove_if_empty(archive.parent)


def read_pronunciations(path, spell: Callable[[str], str] = str,
                        words=None) -> dict[str, list[list[str]]]:
    """A pronouncing dictionary as {spell(word): [pron, ...]}: librispeech-lexicon.txt (`WORD
    PH1 PH2 ...`), CMUdict or cmudict-en-us.dict (`word PH1 ...`, alternatives `word(2)`,
    CMUdict's `# comments`). Stress digits stripped (all three then have the same 39 phones)
    and the alternatives this makes equal merged, in file order; only `words` (as spelled),
    where given. A word without phones is an error naming the file and line."""
    path, prons = Path(path), {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split("#")[0].split()
        if not f:
            continue
        word = spell(re.sub(r"\(\d+\)$", "", f[0]))
        if words is not None and word not in words:
            continue
        if len(f) < 2:
            raise ValueError(f"{path}:{lineno}: word '{f[0]}' has no pronunciation")
        pron = [re.sub(r"\d", "", ph) for ph in f[1:]]
        if pron not in prons.setdefault(word, []):
            prons[word].append(pron)
    return prons
