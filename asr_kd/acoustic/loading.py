"""Reading any trained acoustic model back, told apart by its checkpoint's `kind`."""

from __future__ import annotations

from pathlib import Path

import torch

from asr_kd.acoustic.dnn import DnnAcousticModel, EnsembleAcousticModel
from asr_kd.acoustic.gmm import GmmAcousticModel
from asr_kd.acoustic.specialists import SpecialistAcousticModel
from asr_kd.hmm.model import GmmHmm


def load_acoustic_model(path, device):
    """final.mdl (GMM-HMM) or final.pt (a DNN, an ensemble, or a generalist with
    specialists), told apart by the file's own `kind`."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if obj.get("kind") == "gmm-hmm":
        return GmmAcousticModel(GmmHmm.from_checkpoint(obj).to(device))
    if obj.get("kind") == "dnn":
        return DnnAcousticModel.from_checkpoint(obj, device)
    if obj.get("kind") == "specialists":
        return SpecialistAcousticModel.from_checkpoint(obj, device)
    if obj.get("kind") == "ensemble":
        return EnsembleAcousticModel([DnnAcousticModel.from_checkpoint(m, device)
                                      for m in obj["members"]], obj["combine"])
    raise ValueError(f"{path}: not an asr-kd acoustic model (kind={obj.get('kind')!r})")
