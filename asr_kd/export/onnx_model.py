"""A trained acoustic model as one ONNX graph: CMVN-normalised fbank [B, T, F] in, the pdfs'
log-likelihoods [B, T, P] out (log P(pdf | x) - log P(pdf): the priors folded in; the acoustic
scale is the decoder's, in the manifest).

torch's ONNX exporter (torch.export, then onnxscript; the TorchScript one for recurrent layers)
traces the network's own `forward`, so a user's architecture exports as the built-in ones do,
with batch and time as dynamic axes. One that cannot be exported stops with the operator the
exporter could not convert.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import torch

from asr_kd.acoustic.base import AcousticModel
from asr_kd.acoustic.dnn import DnnAcousticModel, EnsembleAcousticModel
from asr_kd.acoustic.soft_targets import combine_log_probs

INPUT, OUTPUT = "feats", "loglikes"
OPSET = 18
# The exporter's chatter: a line per graph pass (onnx_ir, INFO) and one per torchvision op it
# cannot register (torchvision is not installed; no acoustic model uses it).
for _name in ("onnx_ir", "onnxscript", "torch.onnx._internal.exporter._registration"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class _Scoring(torch.nn.Module):
    """The networks (one, or an ensemble's members) and their combination, minus log priors."""

    def __init__(self, nets: list[torch.nn.Module], log_prior: torch.Tensor,
                 combine: str | None):
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)
        self.combine = combine
        self.register_buffer("log_prior", log_prior.float().clone())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.combine is None:
            logp = torch.log_softmax(self.nets[0](feats).float(), dim=-1)
        else:
            logp = combine_log_probs(torch.stack([n(feats) for n in self.nets]), 1.0,
                                     self.combine)
        return logp - self.log_prior


def scoring_module(model: AcousticModel) -> torch.nn.Module:
    """The module that `export_onnx` traces: a DNN or an ensemble of DNNs, on the CPU, in eval
    mode. Its output on [1, T, F] equals the model's own scores (asr_kd.acoustic)."""
    if isinstance(model, DnnAcousticModel):
        nets, combine = [model.net], None
    elif isinstance(model, EnsembleAcousticModel):
        nets, combine = [m.net for m in model.members], model.combine
    else:
        raise ValueError(f"{type(model).__name__}: only DNN acoustic models and ensembles of "
                         "them export to ONNX (a GMM's scores are not a network)")
    return _Scoring([n.cpu().eval() for n in nets], model.log_prior, combine).eval()


def _unsupported_operator(err: Exception) -> str | None:
    """The operator an exporter error names ("No ONNX function found for
    <OpOverload(op='aten.cummax', ...)>"), where it names one."""
    text = str(err)
    m = re.search(r"op='([\w.]+)'", text) or re.search(r"\b(aten[.:]+\w+)", text)
    return m.group(1) if m else None


def export_onnx(module: torch.nn.Module, input_dim: int, path, frames: int = 200) -> Path:
    """Trace `module` on a [1, frames, input_dim] example and write ONNX with dynamic batch and
    time to `path`. ValueError names the operator when the architecture cannot be exported."""
    path = Path(path)
    example = torch.zeros(1, frames, input_dim)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if any(isinstance(m, torch.nn.RNNBase) for m in module.modules()):
                # torch.export unrolls an LSTM at the traced length; the TorchScript exporter
                # writes ONNX's own LSTM op, whose time axis stays dynamic.
                axes = {0: "batch", 1: "time"}
                torch.onnx.export(module, (example,), str(path), dynamo=False,
                                  input_names=[INPUT], output_names=[OUTPUT],
                                  dynamic_axes={INPUT: axes, OUTPUT: axes},
                                  opset_version=OPSET)
                return path
            batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)
            program = torch.onnx.export(module, (example,), dynamo=True,
                                        input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=({0: batch, 1: time},),
                                        opset_version=OPSET, verbose=False)
    except Exception as e:  # the exporter raises many types; the operator is what a user needs
        op = _unsupported_operator(e)
        lines = str(e).strip().splitlines()
        what = f"operator {op} has no ONNX conversion" if op else (lines[0] if lines else
                                                                    type(e).__name__)
        names = ", ".join(sorted({type(n).__name__ for n in module.nets}))
        raise ValueError(f"{names} cannot be exported to ONNX: {what}") from None
    program.save(str(path))
    return path
