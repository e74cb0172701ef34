"""Per-speaker fMLLR transforms of a GMM-HMM's features: estimated from an alignment, composed,
applied, and stored as Kaldi's trans.ark / trans.scp. Shared by SAT training
(asr_kd.hmm.train_sat), alignment (align_fmllr.sh) and two-pass decoding (decode_fmllr.sh), the
last two in asr_kd.steps.

A transform W = [A b] [D, D+1] maps one speaker's speaker-independent GMM features x (tri2's
LDA+MLLT ones) to y = A x + b (Kaldi's transform-feats). A transform estimated on features that
are adapted already is composed onto the one in place (compose-transforms --b-is-affine=true):

    W2 o W1 = [A2 A1, A2 b1 + b2]

so a speaker always has one transform, from x.

The statistics are Kaldi's ali-to-post | weight-silence-post | gmm-est-fmllr: each frame belongs
to its aligned pdf, shared among the pdf's Gaussians by their posteriors, and frames of silence
pdfs are weighted `silence_weight` (0: left out). The posteriors may come from another model over
other features whose Gaussians are numbered alike (gmm-post-to-gpost | gmm-est-fmllr-gpost: SAT's
final.alimdl on the unadapted features, the first estimate of align_fmllr.sh and decode_fmllr.sh).
The solve is asr_kd.hmm.fmllr's, batched over `spk_batch` speakers at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr_kd.features.storage import write_matrices
from asr_kd.hmm.fmllr import FmllrStats, apply_fmllr, estimate_fmllr
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.lda_mllt import frame_batches, gauss_posteriors
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.train_mono import AlignConfig, align_batched
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.utils.fst import FstArrays

log = logging.getLogger(__name__)

F64 = torch.float64
TRANS_ARK = "trans.ark"  # beside it trans.scp, keyed by speaker


@dataclass
class FmllrConfig:
    silence_weight: float = 0.0  # weight-silence-post on frames of silence pdfs (train_sat.sh)
    num_iters: int = 40  # row-update passes of each estimate (gmm-est-fmllr's default)
    min_count: float = 20.0  # a speaker with fewer weighted frames keeps the identity
    spk_batch: int = 128  # speakers solved together: [S, D, D+1, D+1] float64 statistics
    batch_frames: int = 100_000  # frames per batch of the statistics (memory)


def silence_pdfs(tm: TransitionModel, silence_phones) -> np.ndarray:
    """[num_pdfs] bool: the pdfs reached only from transition ids of silence phones. Our trees
    have one root per phone (asr_kd.hmm.tree), so a pdf path (what a decoder returns) says
    which frames are silence as a transition-id path would."""
    tids = np.arange(1, tm.num_tids + 1)
    pdf = tm.tid2pdf[tids]
    sil = np.isin(tm.tid2phone[tids], list(silence_phones))
    nonsil = np.zeros(tm.num_pdfs, dtype=bool)
    nonsil[pdf[~sil]] = True
    seen = np.zeros(tm.num_pdfs, dtype=bool)
    seen[pdf] = True
    return seen & ~nonsil


def compose(w2: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """W2 o W1 (apply W1, then W2) for [D, D+1] affine transforms."""
    d = w1.shape[0]
    w2, w1 = w2.to(F64), w1.to(F64)
    return torch.cat([w2[:, :d] @ w1[:, :d], (w2[:, :d] @ w1[:, d] + w2[:, d])[:, None]], 1)


def identity(dim: int) -> torch.Tensor:
    return torch.eye(dim, dim + 1, dtype=F64)


def estimate_transforms(gmm: DiagGmm, feats: Mapping[str, torch.Tensor],
                        pdf_alis: Mapping[str, np.ndarray], spk_of_utt: Mapping[str, str],
                        sil_pdf: np.ndarray, cfg: FmllrConfig, device: torch.device,
                        post_gmm: DiagGmm | None = None,
                        post_feats: Mapping[str, torch.Tensor] | None = None,
                        ) -> tuple[dict[str, torch.Tensor], dict]:
    """fMLLR for every speaker of the utterances in `pdf_alis` (pdf ids per frame of `feats`),
    each from the identity in the space of `feats`, against `gmm`. Gaussian posteriors within
    the aligned pdf are `post_gmm`'s over `post_feats` if given, else `gmm`'s over `feats`.

    Returns ({speaker: W [D, D+1] float64 on the CPU}, summary) with summary = {speakers,
    identity (speakers under min_count, left at the identity), frames (weighted), auxf_gain
    (per weighted frame, over all speakers)}."""
    utts = sorted(pdf_alis)
    spks = sorted({spk_of_utt[u] for u in utts})
    utts_of: dict[str, list[str]] = {s: [] for s in spks}
    for u in utts:
        utts_of[spk_of_utt[u]].append(u)
    weight_of_pdf = np.where(sil_pdf, cfg.silence_weight, 1.0)
    d = gmm.means.shape[-1]
    gmm = gmm.to(device)
    if post_gmm is not None:
        if post_gmm.means.shape != gmm.means.shape:
            raise ValueError(f"posterior model's GMMs {tuple(post_gmm.means.shape)} differ "
                             f"from the adapted model's {tuple(gmm.means.shape)}")
        post_gmm = post_gmm.to(device)
    lengths = {u: len(pdf_alis[u]) for u in utts}
    out: dict[str, torch.Tensor] = {}
    frames = gain = 0.0
    low = 0
    for g0 in range(0, len(spks), cfg.spk_batch):
        group = spks[g0:g0 + cfg.spk_batch]
        index = {s: i for i, s in enumerate(group)}
        stats = FmllrStats.zeros(len(group), d, device)
        for batch in frame_batches([u for s in group for u in utts_of[s]], lengths,
                              cfg.batch_frames):
            pdf = np.concatenate([pdf_alis[u] for u in batch])
            w = weight_of_pdf[pdf]
            keep = torch.from_numpy(w > 0).to(device)
            spk = torch.from_numpy(np.concatenate(
                [np.full(lengths[u], index[spk_of_utt[u]]) for u in batch])).to(device)[keep]
            pdf_t = torch.from_numpy(pdf).to(device)[keep]
            x = torch.cat([feats[u] for u in batch]).to(device)[keep]  # [N, D]
            post = None
            if post_gmm is not None:
                q = torch.cat([post_feats[u] for u in batch]).to(device)[keep]
                post = gauss_posteriors(post_gmm, q, pdf_t)
            stats.accumulate(x, pdf_t, spk, gmm, post=post,
                             weights=torch.from_numpy(w).to(device)[keep])
        W, hist = estimate_fmllr(stats, cfg.num_iters, cfg.min_count)
        for s, i in index.items():
            out[s] = W[i].cpu()
        frames += float(stats.beta.sum())
        gain += float((hist[-1] - hist[0]).sum())
        low += int((stats.beta < cfg.min_count).sum())
    summary = {"speakers": len(spks), "identity": low, "frames": frames,
               "auxf_gain": gain / max(frames, 1e-10)}
    return out, summary


def apply_transforms(feats: Mapping[str, torch.Tensor], transforms: Mapping[str, torch.Tensor],
                     spk_of_utt: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """y = A x + b with each utterance's speaker's transform (transform-feats --utt2spk),
    in the features' dtype and on their device."""
    missing = sorted({spk_of_utt[u] for u in feats} - set(transforms))
    if missing:
        raise ValueError(f"no fMLLR transform for {len(missing)} speakers: "
                         f"{' '.join(missing[:10])}")
    return {u: apply_fmllr(transforms[spk_of_utt[u]], x) for u, x in feats.items()}


def write_transforms(out_dir: str | os.PathLike, transforms: Mapping[str, torch.Tensor]) -> None:
    """<out_dir>/trans.ark and trans.scp: Kaldi float matrices [D, D+1] keyed by speaker (what
    gmm-est-fmllr writes and transform-feats reads), written atomically."""
    write_matrices(out_dir, {s: w.detach().cpu().numpy() for s, w in transforms.items()},
                   TRANS_ARK)


def read_transforms(trans_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The transforms of <trans_dir>/trans.ark, float64 [D, D+1] per speaker. The archive is
    read directly: trans.scp names it as the writer's working directory saw it (as feats.scp
    does), which need not be ours."""
    ark = Path(trans_dir) / TRANS_ARK
    if not ark.is_file():
        raise FileNotFoundError(f"{ark}: no fMLLR transforms there")
    return {s: torch.from_numpy(np.asarray(m, dtype=np.float64))
            for s, m in kaldiio.load_ark(str(ark))}


def fill_identity(transforms: dict[str, torch.Tensor], speakers, dim: int,
                  why: str) -> dict[str, torch.Tensor]:
    """`transforms` with the identity for every speaker of `speakers` that has none (all its
    utterances failed to align or decode), logged."""
    missing = sorted(set(speakers) - set(transforms))
    if missing:
        log.warning("%d speakers keep the identity (%s): %s", len(missing), why,
                    " ".join(missing[:10]))
    return {**transforms, **{s: identity(dim) for s in missing}}


def align_fmllr(model: GmmHmm, alimdl: GmmHmm, graphs: dict[str, FstArrays],
                sifeats: dict[str, torch.Tensor], spk_of_utt: Mapping[str, str],
                silence_phones, align_cfg: AlignConfig, cfg: FmllrConfig,
                device: torch.device) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor],
                                               list[dict]]:
    """Kaldi's align_fmllr.sh for speakers without transforms: align with the speaker-
    independent `alimdl` (SAT's final.alimdl) on the unadapted features `sifeats`, estimate fMLLR
    against `model` from that (Gaussian posteriors from alimdl), align with `model` on the adapted
    features, then estimate once more on them and compose (the transforms for what follows, as
    align_fmllr.sh does; the alignment is the one before). Returns (transition-id alignments,
    {speaker: W}, the two estimates' summaries)."""
    sil = silence_pdfs(model.tm, silence_phones)
    dim = model.gmm.means.shape[-1]
    speakers = {spk_of_utt[u] for u in graphs}
    pre = align_batched(alimdl, graphs, sifeats, align_cfg)
    w, first = estimate_transforms(model.gmm, sifeats, {u: model.tm.tid2pdf[a] for u, a in
                                                        pre.items()}, spk_of_utt, sil, cfg,
                                   device, post_gmm=alimdl.gmm, post_feats=sifeats)
    w = fill_identity(w, speakers, dim, "no alignment with final.alimdl")
    feats = apply_transforms({u: sifeats[u] for u in graphs}, w, spk_of_utt)
    tids = align_batched(model, graphs, feats, align_cfg)
    w2, second = estimate_transforms(model.gmm, feats, {u: model.tm.tid2pdf[a] for u, a in
                                                        tids.items()}, spk_of_utt, sil, cfg,
                                     device)
    w = {s: compose(w2[s], w[s]) if s in w2 else w[s] for s in w}
    log.info("align_fmllr: fMLLR auxf gain %.4f then %.4f per frame over %d speakers",
             first["auxf_gain"], second["auxf_gain"], len(speakers))
    return tids, w, [first, second]
