"""Trained acoustic models as decoding, scoring and distillation see them: a DNN, an ensemble,
a GMM-HMM, a generalist with specialists. Each has `log_posteriors(feats, temperature=1.0)` and
`scores(feats)` (asr_kd.acoustic.base); `load_acoustic_model` reads any of them back."""

from asr_kd.acoustic.base import AcousticModel
from asr_kd.acoustic.dnn import (
    UNSEEN_LOG_PRIOR,
    DnnAcousticModel,
    EnsembleAcousticModel,
    flops_per_frame,
    read_priors,
)
from asr_kd.acoustic.gmm import GmmAcousticModel
from asr_kd.acoustic.loading import load_acoustic_model
from asr_kd.acoustic.specialists import SpecialistAcousticModel

__all__ = [
    "UNSEEN_LOG_PRIOR",
    "AcousticModel",
    "DnnAcousticModel",
    "EnsembleAcousticModel",
    "GmmAcousticModel",
    "SpecialistAcousticModel",
    "flops_per_frame",
    "load_acoustic_model",
    "read_priors",
]
