"""Typed stage configs: dataclasses filled from YAML; an unknown key is an error naming it."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path

import yaml


def from_dict(cls, data: dict | None, where: str = "config"):
    """Build dataclass `cls` from a dict, recursing into nested dataclass fields."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key '{unknown[0]}' for {cls.__name__} "
                         f"(known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`key.sub=value` strings (value parsed as YAML) set into a copy of nested dict `data`."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override '{item}': expected key=value, e.g. distill.alpha=0.5")
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override '{item}': '{part}' is not a section")
        node[last] = yaml.safe_load(value)
    return data


def load_config(cls, path: str | Path | None, overrides: list[str] = ()):
    """Read YAML `path` (none: defaults) plus `key=value` overrides into dataclass `cls`."""
    data = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}) if path else {}
    where = str(path) if path else "defaults"
    if overrides:
        data = apply_overrides(data, list(overrides))
        where += " + --set " + " ".join(overrides)
    return from_dict(cls, data, where)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path) -> None:
    from asr_kd.utils.io import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
