"""The one runtime policy: what a device means for how the heavy steps run.

- Stacking: same-shape members train as one stacked module (one batched matmul per layer for
  all of them) on a GPU, where that is what makes an ensemble cheap; elsewhere a loop, which
  draws the same numbers without dropout and is faster on a CPU. A config may force either.
- Precision: training steps (the members' and online teachers' forward passes) may run under
  bf16 autocast on a GPU. Scoring (decoding log-likelihoods, frame-accuracy argmaxes,
  validation) and the cached soft targets are float32 on every device, so a table computed on
  a GPU reproduces the CPU's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

SCORE_DTYPE = torch.float32


@dataclass(frozen=True)
class RuntimePolicy:
    device: torch.device
    stacked: bool  # same-shape members as one stacked module
    train_bf16: bool  # bf16 autocast in training forward passes

    def train_autocast(self):
        """The context for a training forward pass."""
        if not self.train_bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def runtime_policy(device: torch.device | str, stacked: bool | None = None) -> RuntimePolicy:
    """The policy for `device`; `stacked` (a config's true/false) overrides the default."""
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    return RuntimePolicy(device, on_gpu if stacked is None else bool(stacked), on_gpu)
