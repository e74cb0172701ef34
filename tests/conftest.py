"""Shared fixtures: the real corpora beside the checkout, and one yesno recipe run per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"


def corpus(name: str) -> Path:
    path = CORPORA / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def run_recipe(recipe_dir: Path, *args: str, timeout: int = 1200,
               pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """bash run.sh ARGS in recipe_dir, with asr_kd (and `pythonpath`: a user's model code)
    importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, (REPO, *pythonpath))))
    return subprocess.run(["bash", "run.sh", *args], cwd=recipe_dir, env=env, text=True,
                          capture_output=True, timeout=timeout)


def recipes_dir(dest: Path) -> Path:
    """dest/recipes with recipes/common and local/ linked where a recipe's run.sh finds them
    (../common, ../../local); a recipe copied under it runs as in the checkout."""
    (dest / "recipes").mkdir(parents=True)
    (dest / "recipes" / "common").symlink_to(REPO / "recipes" / "common")
    (dest / "local").symlink_to(REPO / "local")
    return dest / "recipes"


def copy_recipe(name: str, dest: Path) -> Path:
    """A private copy of recipes/<name> (run.sh + conf), so runs in tests never touch the
    checkout's own data/ and exp/."""
    rdir = recipes_dir(dest) / name
    shutil.copytree(REPO / "recipes" / name, rdir,
                    ignore=shutil.ignore_patterns("data", "exp", "corpus", "corpus.path"))
    return rdir


@pytest.fixture(scope="session")
def yesno_run(tmp_path_factory):
    """The whole yesno recipe, stages 0-10, on the real audio (CPU)."""
    corpus("yesno")
    rdir = copy_recipe("yesno", tmp_path_factory.mktemp("yesno"))
    proc = run_recipe(rdir, "--device", "cpu")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
    assert proc.returncode == 0, "yesno recipe failed"
    return rdir, proc
