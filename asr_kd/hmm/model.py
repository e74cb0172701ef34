"""A GMM-HMM acoustic model: transition model, context-dependency tree, diagonal GMMs and the
feature transform it uses.

GMMs are trained on cepstra derived from the stored log-mel filterbank (DCT + liftering, as
Kaldi's MFCC), with deltas (mono, tri1: train_deltas.sh) or spliced and projected by a learned
matrix (tri2: LDA+MLLT, train_lda_mllt.sh): diagonal covariances suit decorrelated cepstra far
better than correlated log-mel bins. DNNs read the filterbank directly.

A speaker-adapted model (tri3: train_sat.sh) is trained on those features moved by a per-speaker
fMLLR transform (asr_kd.hmm.sat), which is not part of the model: `speaker_adapted` says that
its scores are only meaningful on adapted features, and align and decode supply them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from asr_kd.features.transforms import add_deltas, mfcc_from_fbank, splice
from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.gmm import DiagGmm
from asr_kd.hmm.transitions import TransitionModel
from asr_kd.utils.io import save_torch


@dataclass
class GmmFeatureConfig:
    type: str = "mfcc"  # "mfcc" (DCT of the log-mel bins) or "fbank"
    num_ceps: int = 13
    cepstral_lifter: float = 22.0
    delta_order: int = 2
    splice: int = 0  # +-frames of context stacked after the deltas (tri2: 3, no deltas)
    # [dim, D * (2 * splice + 1)] projection of the spliced frames (tri2: LDA, then MLLT
    # composed onto it), learned by train-lda-mllt and stored in the model, never in YAML
    transform: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.transform is not None and not isinstance(self.transform, torch.Tensor):
            raise ValueError("feature.transform is learned (asr-kd train-lda-mllt) and stored "
                             "in the model; it is not a config key")
        if self.splice < 0:
            raise ValueError(f"feature.splice must be >= 0, got {self.splice}")

    def apply(self, fbank: torch.Tensor) -> torch.Tensor:
        """[T, num_mel_bins] CMVN'd log-mel -> [T, D] GMM features: cepstra, deltas, splicing,
        then y_t = M x_t with the learned transform M (Kaldi's transform-feats)."""
        x = fbank
        if self.type == "mfcc":
            x = mfcc_from_fbank(x, self.num_ceps, self.cepstral_lifter)
        elif self.type != "fbank":
            raise ValueError(f"unknown GMM feature type '{self.type}' (mfcc or fbank)")
        if self.delta_order > 0:
            x = add_deltas(x, order=self.delta_order)
        if self.splice > 0:
            x = splice(x, self.splice, self.splice)  # [T, D * (2 * splice + 1)]
        if self.transform is not None:
            m = self.transform.to(device=x.device, dtype=x.dtype)
            if m.shape[1] != x.shape[-1]:
                raise ValueError(f"feature transform is {tuple(m.shape)}, features have "
                                 f"{x.shape[-1]} dims")
            x = x @ m.T  # [T, dim]
        return x

    def with_transform(self, transform: torch.Tensor | None) -> GmmFeatureConfig:
        """A copy that applies `transform` (float32, as Kaldi stores matrices)."""
        m = None if transform is None else transform.detach().float()
        return dataclasses.replace(self, transform=m)

    def to(self, device) -> GmmFeatureConfig:
        return self if self.transform is None else self.with_transform(self.transform.to(device))

    def state_dict(self) -> dict:
        d = asdict(self)
        # splice and transform at their defaults are left out: such models save as before tri2
        if self.splice == 0:
            del d["splice"]
        if self.transform is None:
            del d["transform"]
        else:
            d["transform"] = self.transform.cpu()
        return d


class GmmHmm:
    def __init__(self, tm: TransitionModel, gmm: DiagGmm, feature: GmmFeatureConfig,
                 ctx: ContextDependency | None = None, speaker_adapted: bool = False):
        self.tm, self.gmm, self.feature = tm, gmm, feature
        self.ctx = ctx or ContextDependency.from_transitions(tm.topo, tm.tuples)
        self.speaker_adapted = speaker_adapted  # trained on fMLLR-adapted features (SAT)

    @property
    def num_pdfs(self) -> int:
        return self.tm.num_pdfs

    def log_likelihoods(self, fbank: torch.Tensor,
                        fmllr: torch.Tensor | None = None) -> torch.Tensor:
        """[T, num_mel_bins] -> [T, num_pdfs] log p(x_t | pdf); with `fmllr` [D, D+1], the
        speaker's transform, on the adapted features A x + b."""
        x = self.feature.apply(fbank.to(self.gmm.means.device, self.gmm.means.dtype))
        if fmllr is not None:
            w = fmllr.to(x.device, x.dtype)
            x = x @ w[:, :-1].T + w[:, -1]
        return self.gmm.log_likelihoods(x)

    def save(self, path) -> None:
        obj = {"kind": "gmm-hmm", "transitions": self.tm.state_dict(),
               "gmm": self.gmm.state_dict(), "feature": self.feature.state_dict(),
               "tree": self.ctx.to_json()}
        if self.speaker_adapted:  # left out otherwise: other models save as before tri3
            obj["speaker_adapted"] = True
        save_torch(path, obj)  # equal models, equal bytes

    def to(self, device) -> GmmHmm:
        return GmmHmm(self.tm, self.gmm.to(device), self.feature.to(device), self.ctx,
                      self.speaker_adapted)

    @classmethod
    def from_checkpoint(cls, obj: dict) -> GmmHmm:
        # models saved before trees existed are monophone; before tri2, without splice or
        # transform (the defaults)
        tree = obj.get("tree")
        return cls(TransitionModel.from_state_dict(obj["transitions"]),
                   DiagGmm.from_state_dict(obj["gmm"]), GmmFeatureConfig(**obj["feature"]),
                   ContextDependency.from_json(tree) if tree else None,
                   bool(obj.get("speaker_adapted", False)))

    @classmethod
    def load(cls, path, device="cpu") -> GmmHmm:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
        if obj.get("kind") != "gmm-hmm":
            raise ValueError(f"{path}: not a GMM-HMM model file")
        return cls.from_checkpoint(obj).to(device)
