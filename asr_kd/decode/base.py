"""What every decoder shares: its config, its hypotheses, its interface and the registry.

A decoder is built from an HCLG (input labels pdf id + 1, output labels word ids), a
`DecodeConfig` and a device, and decodes a batch of utterances at a time:
`decode_batch(loglikes) -> [Hypothesis or None]`, one per utterance (None: no path survived
the beam). Decoders register under a name (`register_decoder`); `make_decoder(name, ...)`
builds one, and the command line offers `decoder_names()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr_kd.utils.registry import Registry

DEFAULT_DECODER = "reference"  # kaldi-decoder's FasterDecoder: the one the figures are quoted with


@dataclass
class DecodeConfig:
    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200
    beam_delta: float = 0.5  # Kaldi's: added to the beam that max/min-active tightens or loosens


@dataclass
class Hypothesis:
    words: list[int]
    pdf_alignment: np.ndarray  # [T] pdf id per frame
    cost: float  # graph + acoustic cost of the best path
    reached_final: bool


class Decoder:
    """The interface. `from_graph` builds one; `decode_batch` takes per utterance [T_b, P]
    unscaled log-likelihoods (torch tensors on any device, or numpy arrays)."""

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device: torch.device | str = "cpu") -> Decoder:
        raise NotImplementedError

    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        raise NotImplementedError


_DECODERS = Registry("decoder")
register_decoder = _DECODERS.register


def decoder_names() -> list[str]:
    """The registered decoders, the default first."""
    return sorted(_DECODERS.names(), key=lambda n: (n != DEFAULT_DECODER, n))


def make_decoder(name: str, hclg, cfg: DecodeConfig, device: torch.device | str = "cpu"):
    if name not in _DECODERS:
        raise ValueError(f"unknown decoder '{name}' (known: {', '.join(decoder_names())})")
    return _DECODERS[name].from_graph(hclg, cfg, device)


def decode_marker(decoder: str) -> str:
    """The done-marker of a decode dir names its decoder: switching decoders redoes it."""
    return f"done_{decoder}"
