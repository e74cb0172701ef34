"""What a trained run is and where it came from: `run.json` beside its model.

Every training stage writes one: its `role` (gmm, teacher, ensemble, student, sweep, share,
seed, transfer, specialists), the settings that tell it apart from its siblings, the data and
alignments it trained on, and provenance: the commit (and whether the tree had changes), the
versions of the packages that compute the figures, the sha256 of its config, the device, the
threads and the seed. The report and `asr-kd evaluate` read these files; they never infer a
run's role from its folder's name.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import yaml

from asr_kd.utils.io import write_json

RUN_FILE = "run.json"
ROLES = ("gmm", "teacher", "ensemble", "student", "sweep", "share", "seed", "transfer",
         "specialists")
_PACKAGES = ("asr-kd", "torch", "torchaudio", "numpy", "kaldifst", "kaldi-decoder", "kaldilm",
             "kaldiio", "kaldi-native-fbank", "soundfile")


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def config_sha256(config: dict | None) -> str | None:
    """sha256 of the config as canonical YAML (keys sorted): equal configs, equal hashes."""
    if config is None:
        return None
    text = yaml.safe_dump(config, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def provenance(device=None, seed: int | None = None, config: dict | None = None) -> dict:
    import torch

    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "versions": versions, "config_sha256": config_sha256(config),
            "device": None if device is None else str(device),
            "threads": torch.get_num_threads(), "seed": seed,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_run(out_dir, role: str, settings: dict | None = None, *, device=None,
              seed: int | None = None, config: dict | None = None, **fields) -> dict:
    """Write out_dir/run.json; `fields` are role-specific (data, ali, teacher, group, ...)."""
    if role not in ROLES:
        raise ValueError(f"unknown run role '{role}' (known: {', '.join(ROLES)})")
    run = {"role": role, "settings": settings or {}, **fields,
           "provenance": provenance(device, seed, config)}
    write_json(Path(out_dir) / RUN_FILE, run)
    return run


def read_run(run_dir) -> dict | None:
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def find_runs(exp_dir) -> dict[Path, dict]:
    """Every run under exp_dir (at any depth), by its directory, in path order."""
    return {p.parent: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(Path(exp_dir).rglob(RUN_FILE))}
