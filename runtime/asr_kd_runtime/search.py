"""The search: kaldi-decoder's FasterDecoder over a kaldifst HCLG, one utterance at a time.

Input labels of HCLG are pdf id + 1, so DecodableCtc scores label i at frame t as M[t, i - 1]
and a [T, num_pdfs] matrix of acoustically scaled log-likelihoods decodes directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldi_decoder
import kaldifst
import numpy as np


@dataclass
class BestPath:
    words: list[int]  # word ids, epsilons removed
    pdf_alignment: np.ndarray  # [T] pdf id per frame
    cost: float  # graph + acoustic cost of the path
    reached_final: bool


class GraphDecoder(kaldi_decoder.FasterDecoder):
    """FasterDecoder that owns its graph: the C++ decoder keeps only a pointer to the FST, so
    a graph that Python frees under it crashes the next search."""

    def __init__(self, hclg: kaldifst.StdVectorFst, beam: float, max_active: int,
                 min_active: int, beam_delta: float):
        opts = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active,
                                                  min_active=min_active, beam_delta=beam_delta)
        super().__init__(hclg, opts)
        self.hclg = hclg


def _scaled(loglikes: np.ndarray, acoustic_scale: float) -> np.ndarray:
    return np.ascontiguousarray(loglikes * acoustic_scale, dtype=np.float32)


def best_path(decoder: GraphDecoder, use_final_probs: bool = True
              ) -> BestPath | None:
    """The decoder's best path so far (to a final state if one was reached and
    `use_final_probs`); None if no path survived."""
    final = decoder.reached_final()
    ok, lattice = decoder.get_best_path(use_final_probs)
    if not ok:
        return None
    ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(lattice)
    if not ok:
        return None
    ali = np.array([i - 1 for i in ilabels if i > 0], dtype=np.int64)
    return BestPath([w for w in olabels if w > 0], ali, float(weight.value1 + weight.value2),
                    bool(final))


def decode(decoder: GraphDecoder, loglikes: np.ndarray,
           acoustic_scale: float) -> BestPath | None:
    """One utterance's [T, num_pdfs] unscaled log-likelihoods -> its best path (or None)."""
    decoder.decode(kaldi_decoder.DecodableCtc(_scaled(loglikes, acoustic_scale)))
    return best_path(decoder)


class IncrementalSearch:
    """The same search fed a chunk of frames at a time (`--online`): each `advance` decodes the
    new frames, and `partial` is the best path so far. After the last chunk the result is the
    offline search's: the decoder runs the same frames in the same order."""

    def __init__(self, decoder: GraphDecoder, acoustic_scale: float):
        self.decoder, self.scale = decoder, acoustic_scale
        self.frames: list[np.ndarray] = []
        self.started = False

    def advance(self, loglikes: np.ndarray) -> None:
        if len(loglikes) == 0:
            return
        self.frames.append(_scaled(loglikes, self.scale))
        # DecodableCtc holds a fixed matrix: the decoder reads the frames it has not decoded yet
        # from one that holds them all.
        decodable = kaldi_decoder.DecodableCtc(np.concatenate(self.frames))
        if not self.started:
            self.decoder.init_decoding()
            self.started = True
        self.decoder.advance_decoding(decodable)

    def partial(self) -> BestPath | None:
        """The best path so far, not forced to a final state (the utterance goes on)."""
        return best_path(self.decoder, use_final_probs=False) if self.started else None

    def final(self) -> BestPath | None:
        return best_path(self.decoder) if self.started else None
