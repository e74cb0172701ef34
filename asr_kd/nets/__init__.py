"""Acoustic models: `model(feats [B, T, F], lengths) -> logits [B, T, num_pdfs]`, each declaring
the `left_context` / `right_context` (frames) it looks at. Built-ins register themselves here;
a user's model is named by a dotted path `package.module:Class` in the recipe config."""

from asr_kd.nets import conformer, mlp, recurrent, tdnn  # noqa: F401  (register built-ins)
from asr_kd.nets.registry import build_model, register

__all__ = ["build_model", "register"]
