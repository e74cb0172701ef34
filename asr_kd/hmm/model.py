"""A GMM-HMM acoustic model: transition model, context-dependency tree, diagonal GMMs and the
feature transform it uses.

GMMs are trained on cepstra derived from the stored log-mel filterbank (DCT + liftering, as
Kaldi's MFCC), with deltas: diagonal covariances suit decorrelated cepstra far better than
correlated log-mel bins. DNNs read the filterbank directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asr_kd.features.transforms import add_deltas, mfcc_from_fbank
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

    def apply(self, fbank: torch.Tensor) -> torch.Tensor:
        """[T, num_mel_bins] CMVN'd log-mel -> [T, D] GMM features."""
        x = fbank
        if self.type == "mfcc":
            x = mfcc_from_fbank(x, self.num_ceps, self.cepstral_lifter)
        elif self.type != "fbank":
            raise ValueError(f"unknown GMM feature type '{self.type}' (mfcc or fbank)")
        if self.delta_order > 0:
            x = add_deltas(x, order=self.delta_order)
        return x


class GmmHmm:
    def __init__(self, tm: TransitionModel, gmm: DiagGmm, feature: GmmFeatureConfig,
                 ctx: ContextDependency | None = None):
        self.tm, self.gmm, self.feature = tm, gmm, feature
        self.ctx = ctx or ContextDependency.from_transitions(tm.topo, tm.tuples)

    @property
    def num_pdfs(self) -> int:
        return self.tm.num_pdfs

    def log_likelihoods(self, fbank: torch.Tensor) -> torch.Tensor:
        """[T, num_mel_bins] -> [T, num_pdfs] log p(x_t | pdf)."""
        x = self.feature.apply(fbank.to(self.gmm.means.device, self.gmm.means.dtype))
        return self.gmm.log_likelihoods(x)

    def save(self, path) -> None:
        obj = {"kind": "gmm-hmm", "transitions": self.tm.state_dict(),
               "gmm": self.gmm.state_dict(), "feature": asdict(self.feature),
               "tree": self.ctx.to_json()}
        save_torch(path, obj)  # equal models, equal bytes

    def to(self, device) -> GmmHmm:
        return GmmHmm(self.tm, self.gmm.to(device), self.feature, self.ctx)

    @classmethod
    def from_checkpoint(cls, obj: dict) -> GmmHmm:
        tree = obj.get("tree")  # models saved before trees existed are monophone
        return cls(TransitionModel.from_state_dict(obj["transitions"]),
                   DiagGmm.from_state_dict(obj["gmm"]), GmmFeatureConfig(**obj["feature"]),
                   ContextDependency.from_json(tree) if tree else None)

    @classmethod
    def load(cls, path, device="cpu") -> GmmHmm:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
        if obj.get("kind") != "gmm-hmm":
            raise ValueError(f"{path}: not a GMM-HMM model file")
        return cls.from_checkpoint(obj).to(device)
