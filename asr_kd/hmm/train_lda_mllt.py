"""tri2: an LDA+MLLT triphone GMM-HMM, Kaldi's steps/train_lda_mllt.sh in torch.

From a source system (tri1, or mono) and its transition-id alignments:

1. LDA (acc-lda, est-lda): the base cepstra (no deltas) spliced +-`splice` frames, classes the
   source alignment's pdfs, silence frames weighted 0 (weight-silence-post 0.0 on the lang's
   silence phones), projected to `lda_dim` dims: M = LDA [lda_dim, D * (2 * splice + 1)].
2. A new tree and first model on the LDA features, as tri1's (acc-tree-stats ... convert-ali).
3. Viterbi EM as tri1's (35 rounds, Gaussians split over the first 25, realignment on 10, 20
   and 30), and on each of `mllt_iters` (2, 4, 6, 12), after that round's realignment:
   gmm-acc-mllt with the current GMM over the current features (silence weighted 0), est-mllt
   for A (one global semi-tied transform), gmm-transform-means (mu <- A mu; the diagonal
   variances are kept, and the round's update re-estimates them), compose-transforms
   (M <- A M), and the features recomputed with the new M before the round's statistics.

The model carries M in its feature config (GmmFeatureConfig.transform), so align, decode and
make-graph apply it unchanged; run_train_lda_mllt also writes it as Kaldi's final.mat.

    asr-kd train-lda-mllt data/train data/lang exp/tri1_ali_train exp/tri2 --config conf/tri2.yaml
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from asr_kd.hmm.lda_mllt import (
    ClassStats,
    MlltStats,
    estimate_lda,
    estimate_mllt,
    frame_batches,
)
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.train_mono import train_em
from asr_kd.hmm.train_tri import TriConfig, init_tri
from asr_kd.lang import Lang

log = logging.getLogger(__name__)


@dataclass
class Tri2Config(TriConfig):
    # base cepstra without deltas: LDA over the spliced frames replaces them
    feature: GmmFeatureConfig = field(default_factory=lambda: GmmFeatureConfig(delta_order=0))
    splice: int = 3  # +-frames spliced before LDA (Kaldi's --splice-opts)
    lda_dim: int = 40  # est-lda --dim
    mllt_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12])
    mllt_passes: int = 200  # est-mllt's row-update passes (stops early once converged)
    batch_frames: int = 200_000  # frames per batch of the LDA and MLLT statistics (memory)


def _check(cfg: Tri2Config) -> None:
    f = cfg.feature
    if f.splice != 0 or f.transform is not None:
        raise ValueError("tri2 sets the feature's splicing and transform itself: set `splice` "
                         "(top level), not feature.splice")
    if f.delta_order != 0:
        raise ValueError(f"feature.delta_order is {f.delta_order}; tri2 splices the base "
                         "cepstra without deltas (Kaldi's train_lda_mllt.sh): set it to 0")
    if cfg.splice < 1:
        raise ValueError(f"splice must be >= 1, got {cfg.splice}")
    late = [i for i in cfg.mllt_iters if not 0 <= i < cfg.num_iters]
    if late:
        raise ValueError(f"mllt_iters {late} are outside the {cfg.num_iters} iterations")


def _features(feature: GmmFeatureConfig, fbank: dict[str, torch.Tensor],
              device: torch.device) -> dict[str, torch.Tensor]:
    return {u: feature.apply(x.to(device)) for u, x in fbank.items()}


def lda_stats(feature: GmmFeatureConfig, fbank: dict[str, torch.Tensor],
              alis: dict[str, np.ndarray], src: GmmHmm, silence_phones: list[int],
              device: torch.device, batch_frames: int = 200_000) -> ClassStats:
    """acc-lda over `feature`'s (spliced) frames, one class per pdf of the source alignment;
    frames of silence phones are left out (weight-silence-post 0.0)."""
    keep_tid = ~np.isin(src.tm.tid2phone, list(silence_phones))  # [num_tids + 1]
    stats = None
    lengths = {u: len(a) for u, a in alis.items()}
    for batch in frame_batches(list(alis), lengths, batch_frames):
        x = torch.cat([feature.apply(fbank[u].to(device)) for u in batch])  # [N, D']
        tids = np.concatenate([alis[u] for u in batch])
        keep = torch.from_numpy(keep_tid[tids]).to(device)
        pdf = torch.from_numpy(src.tm.tid2pdf[tids]).to(device)
        if stats is None:
            stats = ClassStats.zeros(src.num_pdfs, x.shape[1], device)
        stats.accumulate(x[keep], pdf[keep])
    if stats is None or float(stats.count.sum()) == 0:
        raise ValueError("no non-silence frames in the source alignments: nothing for LDA")
    return stats


class MlltUpdates:
    """train_em's `before_stats` hook for tri2: on the rounds of `cfg.mllt_iters`, gmm-acc-mllt
    with the current GMM over the current features (silence frames left out), est-mllt for A,
    gmm-transform-means (mu <- A mu), compose-transforms (M <- A M) and the features of the new
    M, which the round's statistics then use. `history` gets one record per update."""

    def __init__(self, cfg: Tri2Config, fbank: dict[str, torch.Tensor],
                 feats: dict[str, torch.Tensor], silence_phones: list[int],
                 device: torch.device):
        self.cfg, self.fbank, self.feats, self.device = cfg, fbank, feats, device
        self.silence_phones = list(silence_phones)
        self.lengths = {u: x.shape[0] for u, x in fbank.items()}
        self.history: list[dict] = []

    def __call__(self, it: int, model: GmmHmm,
                 alis: dict[str, np.ndarray]) -> dict[str, torch.Tensor] | None:
        if it not in self.cfg.mllt_iters:
            return None
        t0 = time.time()
        keep_tid = ~np.isin(model.tm.tid2phone, self.silence_phones)
        acc = MlltStats.zeros(model.gmm.means.shape[-1], self.device)
        for batch in frame_batches(list(alis), self.lengths, self.cfg.batch_frames):
            tids = np.concatenate([alis[u] for u in batch])
            keep = torch.from_numpy(keep_tid[tids]).to(self.device)
            pdf = torch.from_numpy(model.tm.tid2pdf[tids]).to(self.device)
            x = torch.cat([self.feats[u] for u in batch])  # [N, lda_dim]
            acc.accumulate(x[keep], pdf[keep], model.gmm)
        a, objective = estimate_mllt(acc, self.cfg.mllt_passes)  # [D, D] float64
        g = model.gmm
        g.means = (g.means.to(a) @ a.T).to(g.means.dtype)  # mu <- A mu: [P, M, D]
        model.feature = model.feature.with_transform(a @ model.feature.transform.to(a))
        frames = float(acc.beta)
        before, after = objective[0] / frames, objective[-1] / frames
        self.history.append({"iter": it, "frames": frames, "objective_before": before,
                             "objective_after": after, "passes": len(objective) - 1})
        log.info("iter %d: MLLT objective %.4f -> %.4f per frame (%+.4f) over %.0f frames, "
                 "%d passes (%.1fs)", it, before, after, after - before, frames,
                 len(objective) - 1, time.time() - t0)
        self.feats = _features(model.feature, self.fbank, self.device)
        return self.feats


def train_lda_mllt(lang: Lang, feats: dict[str, torch.Tensor], texts: dict[str, list[str]],
                   src: GmmHmm, alis: dict[str, np.ndarray], cfg: Tri2Config,
                   device: torch.device, where: str = "text") -> tuple[GmmHmm, list[dict]]:
    """feats: CMVN'd log-mel per utterance; alis: the source model's transition-id alignments
    (utterances without one are left out). Returns the model, whose feature config carries the
    final LDA+MLLT matrix, and one record per MLLT update (its round, frames, est-mllt's
    objective per frame before and after, passes)."""
    _check(cfg)
    utts = sorted(u for u in alis if u in texts and u in feats)
    alis = {u: alis[u] for u in utts}
    fbank = {u: feats[u].float() for u in utts}
    for u in utts:
        if len(alis[u]) != fbank[u].shape[0]:
            raise ValueError(f"utterance '{u}': alignment has {len(alis[u])} frames, features "
                             f"{fbank[u].shape[0]}")

    spliced = dataclasses.replace(cfg.feature, splice=cfg.splice)
    stats = lda_stats(spliced, fbank, alis, src, lang.silence_phones, device, cfg.batch_frames)
    lda = estimate_lda(stats, cfg.lda_dim)  # [lda_dim, D * (2 * splice + 1)]
    log.info("LDA: %d -> %d dims from %.0f non-silence frames of %d classes",
             lda.shape[1], lda.shape[0], float(stats.count.sum()), int((stats.count > 0).sum()))
    feature = spliced.with_transform(lda)
    gfeats = _features(feature, fbank, device)
    model, graphs, tri_alis = init_tri(lang, gfeats, texts, src, alis, cfg, feature, device,
                                       where)
    mllt = MlltUpdates(cfg, fbank, gfeats, lang.silence_phones, device)
    model = train_em(model, graphs, gfeats, tri_alis, cfg, device, before_stats=mllt)
    return model, mllt.history
