"""Progress of long loops: a tqdm bar on a terminal; where stderr is a file (a recipe's log),
one log line every `every` percent instead of thousands of carriage-return frames, and none
for a loop that ends within `quiet_s` seconds (a log of many short loops stays readable)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger("asr_kd.progress")


class Progress:
    def __init__(self, total: int | None, desc: str, unit: str = "it", every: float = 10.0,
                 enabled: bool = True, quiet_s: float = 5.0):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.done, self.next_pct, self.t0, self.quiet_s = 0, every, time.time(), quiet_s
        self.enabled = enabled
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False) \
            if enabled and sys.stderr.isatty() else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.total:
            pct = 100.0 * self.done / self.total
            if pct >= self.next_pct and time.time() - self.t0 >= self.quiet_s:
                log.info("%s: %d/%d %s (%.0f%%, %.1f s)", self.desc, self.done, self.total,
                         self.unit, pct, time.time() - self.t0)
                while self.next_pct <= pct:
                    self.next_pct += self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(items: Iterable, desc: str, total: int | None = None, unit: str = "it",
             every: float = 10.0, quiet_s: float = 5.0) -> Iterator:
    """Iterate `items`, showing progress as `Progress` does."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    p = Progress(total, desc, unit, every, quiet_s=quiet_s)
    try:
        for x in items:
            yield x
            p.update(1)
    finally:
        p.close()
