"""Typed stage configs: dataclasses filled from YAML; an unknown key is an error naming it."""

from __future__ import annotations

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


def load_config(cls, path: str | Path | None, section: str | None = None):
    """Read YAML `path` (optionally one top-level `section` of it) into dataclass `cls`."""
    if path is None:
        return cls()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    where = str(path)
    if section is not None:
        data = data.get(section, {})
        where = f"{path}:{section}"
    return from_dict(cls, data, where)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path) -> None:
    from asr_kd.utils.io import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
