"""tri3: a speaker-adapted (SAT) triphone GMM-HMM on fMLLR features, Kaldi's steps/train_sat.sh
in torch.

From a speaker-independent source system (tri2, LDA+MLLT) and its transition-id alignments:

1. The source's features, unchanged (splice and LDA+MLLT matrix: no further LDA), and per speaker
   an fMLLR transform estimated from the source alignment with the source model, silence frames
   weighted 0 (train_sat.sh with the SI model as alimdl; asr_kd.hmm.sat).
2. A new tree and first model on the adapted features, as tri1's and tri2's (init_tri).
3. Viterbi EM as tri1's (35 rounds, Gaussians split over the first 25, realignment on 10, 20 and
   30), and on each of `fmllr_iters` (2, 4, 6, 12), after that round's realignment: fMLLR
   re-estimated with the current model on the current adapted features (silence weighted 0),
   from the identity in that space, and composed onto each speaker's transform as Kaldi does
   (gmm-est-fmllr + compose-transforms); the adapted features are then recomputed from the
   unadapted ones with the composed transform, before the round's statistics.
4. final.alimdl, the speaker-independent model of the same tree and Gaussians: one pass of
   statistics of the unadapted features with the Gaussian posteriors of the final model over
   the adapted ones, on the last alignment (gmm-acc-stats-twofeats + gmm-est). It makes the
   first pass of align_fmllr.sh and decode_fmllr.sh (asr_kd.steps), whose pdfs and Gaussians are
   then the SAT model's.

    asr-kd train-sat data/train data/lang exp/tri2_ali_train exp/tri3 --config conf/tri3.yaml
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.model import GmmFeatureConfig, GmmHmm
from asr_kd.hmm.sat import (
    FmllrConfig,
    apply_transforms,
    compose,
    estimate_transforms,
    silence_pdfs,
)
from asr_kd.hmm.train_mono import train_em
from asr_kd.hmm.train_tri import TriConfig, init_tri
from asr_kd.lang import Lang

log = logging.getLogger(__name__)


@dataclass
class SatConfig(TriConfig):
    # The source model's features, which SAT keeps (its learned matrix comes with the source
    # model, never from YAML): a config whose feature differs from the source's is refused.
    # The default is tri2's (+-3 spliced cepstra without deltas).
    feature: GmmFeatureConfig = field(
        default_factory=lambda: GmmFeatureConfig(delta_order=0, splice=3))
    fmllr_iters: list[int] = field(default_factory=lambda: [2, 4, 6, 12])
    fmllr: FmllrConfig = field(default_factory=FmllrConfig)


@dataclass
class SatSystem:
    """What train_sat returns: the SAT model, its speaker-independent twin (final.alimdl), the
    training speakers' transforms ({speaker: [D, D+1] float64}), and the fMLLR records."""

    model: GmmHmm
    alimdl: GmmHmm
    transforms: dict[str, torch.Tensor]
    fmllr_init: dict  # the source model's estimate (sat.estimate_transforms' summary)
    fmllr: list[dict]  # one per re-estimate, with its round ("iter")


def _check(cfg: SatConfig, src: GmmHmm) -> None:
    if src.speaker_adapted:
        raise ValueError("the source model is speaker-adapted already: train-sat starts from "
                         "a speaker-independent system's alignments (tri2, or tri1)")
    if dataclasses.replace(src.feature, transform=None) != cfg.feature:
        raise ValueError(f"feature {cfg.feature} differs from the source model's "
                         f"{dataclasses.replace(src.feature, transform=None)}: SAT trains on "
                         "the source's features; drop `feature` from the config or make it match")
    late = [i for i in cfg.fmllr_iters if not 0 <= i < cfg.num_iters]
    if late:
        raise ValueError(f"fmllr_iters {late} are outside the {cfg.num_iters} iterations")


class FmllrUpdates:
    """train_em's `before_stats` hook for SAT: on the rounds of `cfg.fmllr_iters`, fMLLR with the
    current model over the current adapted features (silence weighted by the config), composed
    onto each speaker's transform, and the adapted features recomputed from the unadapted ones.
    Every round it keeps the round's alignment (`last_alis`, for final.alimdl)."""

    def __init__(self, cfg: SatConfig, sifeats: dict[str, torch.Tensor],
                 transforms: dict[str, torch.Tensor], spk_of_utt: dict[str, str],
                 silence_phones: list[int], device: torch.device):
        self.cfg, self.sifeats, self.device = cfg, sifeats, device
        self.transforms, self.spk_of_utt = dict(transforms), spk_of_utt
        self.silence_phones = list(silence_phones)
        self.feats = apply_transforms(sifeats, self.transforms, spk_of_utt)
        self.history: list[dict] = []
        self.last_alis: dict[str, np.ndarray] = {}

    def __call__(self, it: int, model: GmmHmm,
                 alis: dict[str, np.ndarray]) -> dict[str, torch.Tensor] | None:
        self.last_alis = alis
        if it not in self.cfg.fmllr_iters:
            return None
        t0 = time.time()
        pdf_alis = {u: model.tm.tid2pdf[a] for u, a in alis.items()}
        new, summary = estimate_transforms(model.gmm, self.feats, pdf_alis, self.spk_of_utt,
                                           silence_pdfs(model.tm, self.silence_phones),
                                           self.cfg.fmllr, self.device)
        for s, w in new.items():  # speakers whose utterances all failed to align keep theirs
            self.transforms[s] = compose(w, self.transforms[s])
        self.feats = apply_transforms(self.sifeats, self.transforms, self.spk_of_utt)
        self.history.append({"iter": it, **summary})
        log.info("iter %d: fMLLR auxf gain %.4f per frame over %.0f frames of %d speakers (%.1fs)",
                 it, summary["auxf_gain"], summary["frames"], summary["speakers"],
                 time.time() - t0)
        return self.feats


def estimate_alimdl(model: GmmHmm, sifeats: dict[str, torch.Tensor],
                    feats: dict[str, torch.Tensor], alis: dict[str, np.ndarray],
                    cfg: SatConfig, device: torch.device) -> GmmHmm:
    """The speaker-independent twin of `model` (Kaldi's final.alimdl): its GMMs re-estimated
    once from the unadapted features `sifeats`, each frame shared among its pdf's Gaussians by
    the posteriors of `model` over the adapted `feats` (gmm-acc-stats-twofeats), so Gaussian k
    of a pdf means the same in both. Tree, transitions and Gaussian count are `model`'s;
    Gaussians with too few frames keep the SAT model's parameters."""
    utts = list(alis)
    pdf = torch.from_numpy(model.tm.tid2pdf[np.concatenate([alis[u] for u in utts])]).to(device)
    x = torch.cat([sifeats[u] for u in utts]).to(device)
    q = torch.cat([feats[u] for u in utts]).to(device)
    g = model.gmm
    occ, sx, sxx, ll = g.accumulate(x, pdf, post_x=q)
    gmm = DiagGmm(g.means.clone(), g.variances.clone(), g.log_weights.clone())
    gmm.update(occ, sx, sxx, cfg.min_gauss_occ, cfg.var_floor)
    log.info("final.alimdl from %d frames (the SAT model's avg log-like/frame %.3f there)",
             len(pdf), ll / max(len(pdf), 1))
    return GmmHmm(model.tm, gmm, model.feature, model.ctx)


def train_sat(lang: Lang, feats: dict[str, torch.Tensor], texts: dict[str, list[str]],
              spk_of_utt: dict[str, str], src: GmmHmm, alis: dict[str, np.ndarray],
              cfg: SatConfig, device: torch.device, where: str = "text") -> SatSystem:
    """feats: CMVN'd log-mel per utterance; spk_of_utt: utt2spk; src: the speaker-independent
    source model (tri2) and alis its transition-id alignments (utterances without one are left
    out). See the module docstring for the steps."""
    _check(cfg, src)
    utts = sorted(u for u in alis if u in texts and u in feats)
    alis = {u: alis[u] for u in utts}
    sifeats = {u: src.feature.apply(feats[u].float().to(device)) for u in utts}  # [T, D]
    for u in utts:
        if len(alis[u]) != sifeats[u].shape[0]:
            raise ValueError(f"utterance '{u}': alignment has {len(alis[u])} frames, features "
                             f"{sifeats[u].shape[0]}")
    src = src.to(device)
    t0 = time.time()
    transforms, init = estimate_transforms(
        src.gmm, sifeats, {u: src.tm.tid2pdf[a] for u, a in alis.items()}, spk_of_utt,
        silence_pdfs(src.tm, lang.silence_phones), cfg.fmllr, device)
    log.info("fMLLR with the source model: auxf gain %.4f per frame over %.0f frames of %d "
             "speakers (%d at the identity) (%.1fs)", init["auxf_gain"], init["frames"],
             init["speakers"], init["identity"], time.time() - t0)
    updates = FmllrUpdates(cfg, sifeats, transforms, spk_of_utt, lang.silence_phones, device)
    model, graphs, tri_alis = init_tri(lang, updates.feats, texts, src, alis, cfg, src.feature,
                                       device, where)
    model.speaker_adapted = True
    model = train_em(model, graphs, updates.feats, tri_alis, cfg, device, before_stats=updates)
    alimdl = estimate_alimdl(model, sifeats, updates.feats, updates.last_alis, cfg, device)
    return SatSystem(model, alimdl, updates.transforms, init, updates.history)
