"""The LM weight and word insertion penalty, chosen on a dev set as Kaldi's score.sh does.

Kaldi decodes once into lattices and, for each LM weight w (`lattice-scale
--inv-acoustic-scale=w`) and word insertion penalty p (`lattice-add-penalty`), takes the path
of least graph cost + p * words + acoustic cost / w; the lowest WER on dev picks (w, p) for
test. We keep no lattices, so each grid point is a search of its own over the same
log-likelihoods, scored once per batch: acoustic scale 1/w, on HCLG with p added to every arc
that outputs a word. A decode config's own acoustic scale is the fixed point (1/w, 0), the
weight 10 of `acoustic_scale: 0.1`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import kaldifst

from asr_kd.utils.fst import add_output_arc_cost

# Kaldi's score.sh default penalties (--word_ins_penalty 0.0,0.5,1.0; its weights, 7:17, are
# the recipes' lm_weights)
DEFAULT_PENALTIES = (0.0, 0.5, 1.0)


@dataclass(frozen=True, order=True)
class LmPoint:
    """One grid point: the LM weight (1 / acoustic scale) and the word insertion penalty."""

    lm_weight: float
    penalty: float = 0.0

    @classmethod
    def of_scale(cls, acoustic_scale: float) -> LmPoint:
        """The fixed point of a decode config: its acoustic scale, no penalty."""
        return cls(round(1.0 / acoustic_scale, 6))

    @property
    def acoustic_scale(self) -> float:
        return 1.0 / self.lm_weight

    @property
    def name(self) -> str:
        """As Kaldi names the scoring files: wer_<LMWT>_<WIP>."""
        return f"{self.lm_weight:g}_{self.penalty:g}"

    def to_dict(self) -> dict:
        return {"lm_weight": self.lm_weight, "word_ins_penalty": self.penalty}


def parse_lm_weights(spec: str) -> list[float]:
    """`7:17` (every integer from 7 to 17, as score.sh's min/max) or `8,10,12.5`."""
    try:
        if ":" in spec:
            lo, hi = (int(x) for x in spec.split(":"))
            weights = [float(w) for w in range(lo, hi + 1)]
        else:
            weights = [float(w) for w in spec.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--lm-weights {spec!r}: give MIN:MAX (integers) or a comma-separated "
                         "list of weights") from None
    if not weights or min(weights) <= 0:
        raise ValueError(f"--lm-weights {spec!r}: the weights must be positive, and at least one")
    return weights


def lm_grid(weights: list[float], penalties) -> list[LmPoint]:
    """Every (weight, penalty) pair, penalties outer as in score.sh's loops."""
    return [LmPoint(w, float(p)) for p in penalties for w in weights]


def choose(wers: dict[LmPoint, float], grid: list[LmPoint], fixed: LmPoint) -> LmPoint:
    """The grid point of least WER. A tie (a small dev set's WER is flat over a range of
    weights) goes to the weight nearest the fixed one, then to the smaller penalty."""
    return min(grid, key=lambda pt: (wers[pt], abs(pt.lm_weight - fixed.lm_weight),
                                     abs(pt.penalty), pt.lm_weight, pt.penalty))


def read_choice(decode_dir) -> tuple[LmPoint, str]:
    """The point a dev decode chose (its scores.json's `lm_tuning.chosen`), and the data dir
    it chose on."""
    path = Path(decode_dir) / "scores.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: --lm-weight-from needs a finished decode of the dev "
                                "set with --lm-weights")
    tuning = json.loads(path.read_text()).get("lm_tuning") or {}
    if tuning.get("grid") is None:
        raise ValueError(f"{path}: this decode chose no LM weight (decode the dev set with "
                         "--lm-weights)")
    c = tuning["chosen"]
    return LmPoint(float(c["lm_weight"]), float(c["word_ins_penalty"])), tuning["chosen_on"]


def add_word_penalty(hclg: kaldifst.StdVectorFst, penalty: float) -> kaldifst.StdVectorFst:
    """A copy of `hclg` with `penalty` added to the cost of every arc that outputs a word:
    lattice-add-penalty's change to each path's graph cost, made before the search."""
    if penalty == 0:
        return hclg
    return add_output_arc_cost(hclg, penalty)
