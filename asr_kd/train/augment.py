"""SpecAugment-style masks on training windows (Park et al., 2019), drawn on the device.

A mask sets a band of filterbank channels, or a run of frames, of a chunk's window (context
included) to zero: the speaker's mean after CMVN. Each chunk of a step draws its own masks.
Every member trained in the step sees the same masked window, and so do online teachers
(`distill.source: online`): their soft targets then describe the input the student is given,
the "consistent teaching" of Beyer et al. (2022), which makes every step's windows new ones for
the teachers to label. A top-k cache holds the teachers' view of the clean frames instead.

The masks come from torch's global generator, whose state every epoch checkpoint keeps, so a
resumed run draws the same ones; nothing is read back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AugmentConfig:
    freq_masks: int = 0  # masks over filterbank channels per chunk
    freq_width: int = 0  # each one 0 .. freq_width channels wide
    time_masks: int = 0  # masks over frames of the window per chunk
    time_width: int = 0  # each one 0 .. time_width frames long

    def __post_init__(self):
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"augment: {name} must be an integer >= 0 (got {value!r})")

    @property
    def active(self) -> bool:
        return bool(self.freq_masks and self.freq_width) or \
            bool(self.time_masks and self.time_width)


def _bands(batch: int, masks: int, width: int, size: int, device) -> torch.Tensor:
    """[batch, size] bool: the union of `masks` random runs of 0 .. width positions each."""
    if not (masks and width):
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    widths = (torch.rand(batch, masks, device=device) * (width + 1)).long()
    # The start leaves room for the run (SpecAugment draws f0 from [0, size - f)).
    starts = (torch.rand(batch, masks, device=device) * (size - widths + 1)).long()
    pos = torch.arange(size, device=device)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(1)


def spec_augment(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """x [B, W, D] windows -> the same with each chunk's masks set to zero."""
    if not cfg.active:
        return x
    b, w, d = x.shape
    freq = _bands(b, cfg.freq_masks, cfg.freq_width, d, x.device)
    time = _bands(b, cfg.time_masks, cfg.time_width, w, x.device)
    return x.masked_fill(freq[:, None, :] | time[:, :, None], 0.0)
