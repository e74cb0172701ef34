"""Model registry: built-ins by name, user models by dotted path `pkg.module:Class`.

Every model is constructed as `cls(input_dim=..., num_pdfs=..., **args)` and must follow the
interface (nets/__init__.py); `build_model` checks it on a probe input at start-up, so a model
that breaks it fails before any training, with a message saying what is wrong.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from asr_kd.utils.registry import Registry

_MODELS = Registry("model")
register = _MODELS.register


def builtin_models() -> list[str]:
    return _MODELS.names()


def resolve(name: str) -> type[nn.Module]:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"model class '{name}': cannot import module '{module_name}' "
                             f"({e}); is its directory on PYTHONPATH?") from None
        if not hasattr(module, attr):
            raise ValueError(f"model class '{name}': module '{module_name}' has no '{attr}'")
        cls = getattr(module, attr)
    elif name in _MODELS:
        cls = _MODELS[name]
    else:
        raise ValueError(f"unknown model '{name}' (built-ins: {', '.join(builtin_models())}; "
                         f"or give 'package.module:Class')")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"model class '{name}' is not a torch.nn.Module subclass")
    return cls


def check_interface(model: nn.Module, name: str, input_dim: int, num_pdfs: int) -> None:
    """Contexts are declared, and a probe batch of two sequences (the second shorter) gives
    logits [B, T, num_pdfs] (and [B, T - left - right, num_pdfs] from `forward_inner`)."""
    for attr in ("left_context", "right_context"):
        v = getattr(model, attr, None)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"model '{name}' must declare '{attr}' as an integer >= 0 "
                             f"(frames of context it looks at); it has {v!r}")
    lc, rc = model.left_context, model.right_context
    t = lc + rc + 8
    x = torch.zeros(2, t, input_dim)
    lengths = torch.tensor([t, t - 3])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                out = model(x, lengths)
            except Exception as e:
                raise ValueError(f"model '{name}' fails on a probe batch feats [2, {t}, "
                                 f"{input_dim}] with lengths [{t}, {t - 3}]: "
                                 f"{type(e).__name__}: {e}") from e
            want = (2, t, num_pdfs)
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            if got != want:
                raise ValueError(f"model '{name}' returned {got} for feats [2, {t}, "
                                 f"{input_dim}]; expected logits of shape {list(want)} "
                                 f"[batch, frames, num_pdfs]")
            if hasattr(model, "forward_inner"):
                got = tuple(model.forward_inner(x).shape)
                if got != (2, t - lc - rc, num_pdfs):
                    raise ValueError(f"model '{name}': forward_inner returned {got} for "
                                     f"feats [2, {t}, {input_dim}]; expected "
                                     f"{[2, t - lc - rc, num_pdfs]} (frames minus the "
                                     f"declared context {lc} + {rc})")
    finally:
        model.train(was_training)


def build_model(spec: dict, input_dim: int, num_pdfs: int) -> nn.Module:
    """spec: {"class": name or dotted path, "args": {...}}."""
    unknown = set(spec) - {"class", "args"}
    if unknown or "class" not in spec:
        raise ValueError(f"model spec needs 'class' and optional 'args'; got keys {sorted(spec)}")
    name, args = spec["class"], spec.get("args") or {}
    cls = resolve(name)
    try:
        model = cls(input_dim=input_dim, num_pdfs=num_pdfs, **args)
    except TypeError as e:
        raise ValueError(f"model '{name}': cannot construct it with input_dim={input_dim}, "
                         f"num_pdfs={num_pdfs} and args {args}: {e}") from e
    check_interface(model, name, input_dim, num_pdfs)
    return model
