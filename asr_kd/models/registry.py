"""Model registry: built-ins by name, user models by dotted path `pkg.module:Class`.

Every model is constructed as `cls(input_dim=..., num_pdfs=..., **args)`.
"""

from __future__ import annotations

import importlib

import torch

_REGISTRY: dict[str, type[torch.nn.Module]] = {}


def register(name: str):
    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"model name '{name}' registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def resolve(name: str) -> type[torch.nn.Module]:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"model class '{name}': cannot import module '{module_name}' "
                             f"({e})") from None
        if not hasattr(module, attr):
            raise ValueError(f"model class '{name}': module '{module_name}' has no '{attr}'")
        return getattr(module, attr)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}' (built-ins: {', '.join(sorted(_REGISTRY))}; "
                         f"or give 'package.module:Class')")
    return _REGISTRY[name]


def build_model(spec: dict, input_dim: int, num_pdfs: int) -> torch.nn.Module:
    """spec: {"class": name or dotted path, "args": {...}}."""
    unknown = set(spec) - {"class", "args"}
    if unknown or "class" not in spec:
        raise ValueError(f"model spec needs 'class' and optional 'args'; got keys {sorted(spec)}")
    cls = resolve(spec["class"])
    model = cls(input_dim=input_dim, num_pdfs=num_pdfs, **spec.get("args", {}))
    for attr in ("left_context", "right_context"):
        if not isinstance(getattr(model, attr, None), int):
            raise ValueError(f"model '{spec['class']}' does not declare an integer '{attr}'")
    return model
