"""The CPU reference decoder: kaldi-decoder's FasterDecoder over a kaldifst HCLG.

Input labels of HCLG are pdf id + 1, so DecodableCtc scores label i at frame t as M[t, i - 1]
and a [T, num_pdfs] matrix of acoustically scaled log-likelihoods decodes directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldi_decoder
import kaldifst
import numpy as np


@dataclass
class DecodeConfig:
    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200


@dataclass
class Hypothesis:
    words: list[int]
    pdf_alignment: np.ndarray  # [T] pdf id per frame
    cost: float  # graph + acoustic cost of the best path
    reached_final: bool


class ReferenceDecoder:
    def __init__(self, hclg: kaldifst.StdVectorFst, cfg: DecodeConfig):
        self.cfg = cfg
        opts = kaldi_decoder.FasterDecoderOptions(beam=cfg.beam, max_active=cfg.max_active,
                                                  min_active=cfg.min_active)
        self.hclg = hclg
        self.decoder = kaldi_decoder.FasterDecoder(hclg, opts)

    def decode(self, loglikes: np.ndarray) -> Hypothesis | None:
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
