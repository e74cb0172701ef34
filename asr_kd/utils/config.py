"""Typed stage configs: dataclasses filled from YAML (a base file, overlays merged over it key by
key); an unknown key is an error naming the file that has it."""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml


def _check_known(cls, data: dict, where: str) -> None:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{where}: unknown key '{unknown[0]}' for {cls.__name__} "
                         f"(known: {', '.join(sorted(fields))})")


def check_keys(cls, data: dict | None, where: str = "config") -> None:
    """The unknown-key check of `from_dict` alone (nothing built): for one file of several
    that are merged, so that the error names the file that has the key."""
    data = data or {}
    _check_known(cls, data, where)
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            check_keys(hints[name], value, f"{where}.{name}")


def from_dict(cls, data: dict | None, where: str = "config"):
    """Build dataclass `cls` from a dict, recursing into nested dataclass fields."""
    data = dict(data or {})
    _check_known(cls, data, where)
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


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` laid over `base`, key by key: where both hold a mapping, the two merge
    recursively; any other value of `overlay` (a scalar, a list, a mapping over a non-mapping)
    replaces `base`'s. Neither argument is changed."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got a "
                         f"{type(data).__name__}")
    return data


def load_config(cls, paths: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = ()):
    """Read YAML `paths` (one file, or a base and then overlays merged over it in order by
    `merge`; none: the defaults) plus `key=value` overrides into dataclass `cls`.

    An unknown key is an error naming the file that has it."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths or ()]
    data: dict = {}
    for path in paths:
        layer = _read_yaml(path)
        check_keys(cls, layer, str(path))
        data = merge(data, layer)
    where = " + ".join(map(str, paths)) or "defaults"
    if overrides:
        data = apply_overrides(data, list(overrides))
        where += " + --set " + " ".join(overrides)
    return from_dict(cls, data, where)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path) -> None:
    from asr_kd.utils.io import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
