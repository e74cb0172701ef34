"""What every decoder shares: its config, its hypotheses, its interface and the registry.

A decoder is built from an HCLG (input labels pdf id + 1, output labels word ids), a
`DecodeConfig` and a device, and decodes a batch of utterances at a time:
`decode_batch(loglikes) -> [Hypothesis or None]`, one per utterance (None: no path survived
the beam). Decoders register under a name (`register_decoder`); `make_decoder(name, ...)`
builds one, and the command line offers `decoder_names()`. `auto` (the default) is a policy over
them, not a decoder: the torch decoder on a GPU, the reference on the CPU (`resolve_decoder`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch
from asr_kd_runtime.search import BestPath

from asr_kd.utils.registry import Registry

AUTO = "auto"
DEFAULT_DECODER = AUTO


@dataclass
class DecodeConfig:
    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200
    beam_delta: float = 0.5  # Kaldi's: added to the beam that max/min-active tightens or loosens


# A search's result, the same for every decoder and for the runtime: word ids, the pdf per frame,
# the path's graph + acoustic cost, and whether it ended in a final state.
Hypothesis = BestPath


class Decoder:
    """The interface. `from_graph` builds one; `decode_batch` takes per utterance [T_b, P]
    unscaled log-likelihoods (torch tensors on any device, or numpy arrays)."""

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device: torch.device | str = "cpu") -> Decoder:
        raise NotImplementedError

    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        raise NotImplementedError

    def rescaled(self, acoustic_scale: float) -> Decoder:
        """This decoder at another acoustic scale, sharing its graph (a decoder reads
        cfg.acoustic_scale as it decodes): the LM-weight grid of asr_kd.decode.lm_weight."""
        other = copy.copy(self)
        other.cfg = replace(self.cfg, acoustic_scale=acoustic_scale)
        return other


_DECODERS = Registry("decoder")
register_decoder = _DECODERS.register


def decoder_names() -> list[str]:
    """What --decoder takes: `auto`, then the registered decoders."""
    return [AUTO, *sorted(_DECODERS.names())]


def resolve_decoder(name: str, device: torch.device | str = "cpu") -> str:
    """The decoder `name` means on `device`: `auto` is the torch decoder on a GPU (batched, its
    frame step never waits for the host) and the reference on the CPU (faster there, one
    utterance at a time); any other name is itself."""
    if name != AUTO:
        return name
    return "torch" if torch.device(device).type == "cuda" else "reference"


def make_decoder(name: str, hclg, cfg: DecodeConfig, device: torch.device | str = "cpu"):
    name = resolve_decoder(name, device)
    if name not in _DECODERS:
        raise ValueError(f"unknown decoder '{name}' (known: {', '.join(decoder_names())})")
    return _DECODERS[name].from_graph(hclg, cfg, device)


def decode_marker(decoder: str, device: torch.device | str = "cpu") -> str:
    """The done-marker of a decode dir names the decoder that ran (`auto` resolved): switching
    decoders redoes it."""
    return f"done_{resolve_decoder(decoder, device)}"
