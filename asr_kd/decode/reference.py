"""The CPU reference decoder (`reference`): kaldi-decoder's FasterDecoder over a kaldifst HCLG,
as the torch-free runtime runs it (asr_kd_runtime.search), one utterance at a time."""

from __future__ import annotations

import kaldifst
import numpy as np
import torch
from asr_kd_runtime.search import GraphDecoder, decode

from asr_kd.decode.base import DecodeConfig, Decoder, Hypothesis, register_decoder


@register_decoder("reference")
class ReferenceDecoder(Decoder):
    def __init__(self, hclg: kaldifst.StdVectorFst, cfg: DecodeConfig):
        self.cfg = cfg
        self.decoder = GraphDecoder(hclg, cfg.beam, cfg.max_active, cfg.min_active,
                                    cfg.beam_delta)

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device="cpu") -> ReferenceDecoder:
        """On the CPU whatever the device: the scores are copied there per utterance."""
        return cls(hclg, cfg)

    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        return [self._decode_one(x if isinstance(x, np.ndarray) else x.float().cpu().numpy())
                for x in loglikes]

    def _decode_one(self, loglikes: np.ndarray) -> Hypothesis | None:
        """loglikes: [T, num_pdfs] log-likelihoods (unscaled); None if no path survived."""
        return decode(self.decoder, loglikes, self.cfg.acoustic_scale)
