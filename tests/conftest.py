"""Shared fixtures: the real corpora beside the checkout, and one yesno recipe run per session."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
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


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """(root, base URL): tmp_path/srv served over HTTP on 127.0.0.1 (an ephemeral port), with
    any proxy bypassed, for this process and the recipes it runs."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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


def decoders_agree(recipe_dir: Path, test_set: str, system: str) -> int:
    """Decode a recipe's test set with one system through both decoders (same graph, scale and
    beam, from the recipe's decode config); assert equal words, pdf paths, costs and
    reached-final flags for every utterance. Returns the number of utterances compared."""
    from asr_kd.steps.decode_agreement import compare_decoders

    agreement = compare_decoders(recipe_dir, test_set, system)
    assert all(h is not None for h in agreement.torch)
    assert agreement.differing() == []
    return len(agreement.utts)
