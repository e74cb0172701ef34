"""The CPU reference decoder (`reference`): kaldi-decoder's FasterDecoder over a kaldifst HCLG.

Input labels of HCLG are pdf id + 1, so DecodableCtc scores label i at frame t as M[t, i - 1]
and a [T, num_pdfs] matrix of acoustically scaled log-likelihoods decodes directly.
"""

from __future__ import annotations

import kaldi_decoder
import kaldifst
import numpy as np
import torch

from asr_kd.decode.base import DecodeConfig, Decoder, Hypothesis, register_decoder


@register_decoder("reference")
class ReferenceDecoder(Decoder):
    def __init__(self, hclg: kaldifst.StdVectorFst, cfg: DecodeConfig):
        self.cfg = cfg
        opts = kaldi_decoder.FasterDecoderOptions(beam=cfg.beam, max_active=cfg.max_active,
                                                  min_active=cfg.min_active,
                                                  beam_delta=cfg.beam_delta)
        self.hclg = hclg
        self.decoder = kaldi_decoder.FasterDecoder(hclg, opts)

    @classmethod
    def from_graph(cls, hclg, cfg: DecodeConfig, device="cpu") -> ReferenceDecoder:
        """On the CPU whatever the device: the scores are copied there per utterance."""
        return cls(hclg, cfg)

    def decode_batch(self, loglikes: list[torch.Tensor | np.ndarray]) -> list[Hypothesis | None]:
        return [self._decode_one(x if isinstance(x, np.ndarray) else x.float().cpu().numpy())
                for x in loglikes]

    def _decode_one(self, loglikes: np.ndarray) -> Hypothesis | None:
        """loglikes: [T, num_pdfs] log-likelihoods (unscaled); None if no path survived."""
        scaled = np.ascontiguousarray(loglikes * self.cfg.acoustic_scale, dtype=np.float32)
        self.decoder.decode(kaldi_decoder.DecodableCtc(scaled))
        final = self.decoder.reached_final()
        ok, lattice = self.decoder.get_best_path()
        if not ok:
            return None
        ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(lattice)
        if not ok:
            return None
        ali = np.array([i - 1 for i in ilabels if i > 0], dtype=np.int64)
        cost = weight.value1 + weight.value2
        return Hypothesis([w for w in olabels if w > 0], ali, float(cost), bool(final))
