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


def decoders_agree(recipe_dir: Path, test_set: str, system: str, monkeypatch) -> int:
    """Decode a recipe's test set with one system through both decoders (same graph, scale and
    beam, from the recipe's decode config); assert equal words and pdf paths for every
    utterance. Returns the number of utterances compared."""
    import numpy as np

    from asr_kd.acoustic import load_acoustic_model
    from asr_kd.decode import DecodeConfig, make_decoder
    from asr_kd.features import as_tensors
    from asr_kd.steps.common import load_dir_feats
    from asr_kd.utils.config import load_config
    from asr_kd.utils.fst import read_fst

    monkeypatch.chdir(recipe_dir)  # feats.scp paths are relative to the recipe dir
    model_path = next(p for p in (Path("exp") / system / n for n in ("final.pt", "final.mdl"))
                      if p.exists())
    cfg = load_config(DecodeConfig, Path("conf") / ("decode_gmm.yaml" if model_path.suffix ==
                                                    ".mdl" else "decode_dnn.yaml"))
    d, feats = load_dir_feats(Path("data") / test_set)
    model = load_acoustic_model(model_path, "cpu")
    feats_t = as_tensors(feats)
    lls = [ll.float().numpy() for ll, _ in model.scores([feats_t[u] for u in d.utts])]
    # a GMM with its own tree (mono below tri1) has its own graph
    graph = Path(f"exp/graph_{system}")
    if not graph.exists():
        graph = Path("exp/graph")
    hclg = read_fst(graph / "HCLG.fst")
    theirs = make_decoder("reference", hclg, cfg).decode_batch(lls)
    ours = make_decoder("torch", hclg, cfg).decode_batch(lls)
    for u, r, h in zip(d.utts, theirs, ours, strict=True):
        assert h is not None and r is not None, u
        assert h.words == r.words and np.array_equal(h.pdf_alignment, r.pdf_alignment), u
        # float64 sums against kaldi-decoder's float32 lattice weights
        assert abs(h.cost - r.cost) <= 1e-2 + 1e-5 * abs(r.cost), u
        assert h.reached_final == r.reached_final, u
    return len(d.utts)
