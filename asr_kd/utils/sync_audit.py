"""Host-synchronisation audit: the torch ops inside a loop body that would make a GPU run wait.

A device-to-host read (`.item()`, `int(t)`, `.tolist()`, `.cpu()`, `.numpy()`) or an op whose
output shape depends on the data (`nonzero`, `unique`, `masked_select`, boolean-mask indexing,
`repeat_interleave` without `output_size`) makes the host wait until the GPU has caught up; in
a per-step or per-frame loop that serialises the two, every step. The same calls run on the CPU,
where they cost nothing, so they can be counted without a GPU: library code marks its loop
bodies with `sync_region(NAME)` (nothing happens unless an audit is on), and `SyncAudit`, a
dispatch mode (ops) and a function mode (tensor methods), counts them per region and outside
every region (setup, once per batch or epoch: allowed, and worth knowing).

    with SyncAudit() as audit:
        train_members(...)
    assert audit.inside("train step") == {}
"""

from __future__ import annotations

import collections
import contextlib

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_AUDITS: list[SyncAudit] = []  # the active ones, innermost last

# aten ops (overload packets) that read a value back or size their output by the data.
SYNC_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique_dim",
                      "_unique", "_unique2", "unique_consecutive", "unique_dim_consecutive",
                      "is_nonzero", "equal"})
# Tensor methods that copy to the host (on a CPU tensor they dispatch nothing, so they are
# caught where they are called). `.to(device)` is not among them: on the CPU a copy of host
# data to the training device (which a GPU run needs) cannot be told from one back to the host.
HOST_METHODS = frozenset({"cpu", "tolist", "numpy"})


@contextlib.contextmanager
def sync_region(name: str):
    """Mark a loop body (`train step`, `decoder frame`, ...) whose syncs an active audit counts
    under `name`; a no-op without one."""
    if not _AUDITS:
        yield
        return
    audit = _AUDITS[-1]
    audit._regions.append(name)
    try:
        yield
    finally:
        audit._regions.pop()


def _has_bool_index(indices) -> bool:
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in indices or ())


def _sync_op(func, args, kwargs) -> str | None:
    """The name to count `func` under if it syncs, else None."""
    name = func.overloadpacket.__name__
    if name in SYNC_OPS:
        return name
    if name in ("index", "index_put", "index_put_", "_index_put_impl_") and len(args) > 1 \
            and _has_bool_index(args[1]):
        return f"{name} (boolean mask)"
    if name == "repeat_interleave" and kwargs.get("output_size") is None:
        return "repeat_interleave (no output_size)"
    return None


class _Ops(TorchDispatchMode):
    def __init__(self, audit: SyncAudit):
        super().__init__()
        self.audit = audit

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _sync_op(func, args, kwargs)
        if name is not None:
            self.audit._count(name)
        return func(*args, **kwargs)


class _Methods(TorchFunctionMode):
    def __init__(self, audit: SyncAudit):
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_METHODS:
            self.audit._count(f"Tensor.{name}")
        return func(*args, **kwargs)


class SyncAudit:
    """Count host syncs per `sync_region` while active (see the module docstring)."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()  # (region or None, op) -> n
        self._regions: list[str] = []
        self._modes = (_Methods(self), _Ops(self))

    def _count(self, op: str) -> None:
        self.counts[(self._regions[-1] if self._regions else None, op)] += 1

    def inside(self, region: str | None) -> dict[str, int]:
        """{op: count} inside `region` (None: outside every region)."""
        return dict(sorted((op, n) for (r, op), n in self.counts.items() if r == region))

    def outside(self) -> dict[str, int]:
        """{op: count} outside every region."""
        return self.inside(None)

    def __enter__(self) -> SyncAudit:
        for mode in self._modes:
            mode.__enter__()
        _AUDITS.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _AUDITS.remove(self)
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
