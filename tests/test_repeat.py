"""Runs that repeat: two fresh runs of the same commit give the same features, GMMs and
alignments, bit for bit (docs/determinism.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from asr_kd.features.fbank import FbankConfig, fbank_utterances
from tests.conftest import copy_recipe, corpus, run_recipe

# Dither on (FSDD's conf/ has none), so that the seeded dither is part of what must repeat.
DITHER = "dither: 1.0\n"


def test_dither_does_not_depend_on_the_batch():
    """An utterance's dithered features are the same alone, beside a longer utterance and in
    batches of any size. 8 kHz, 99 frames: 99 x 200 samples of noise is not a multiple of 16,
    the size where torch's CPU randn redraws the tail of a draw."""
    cfg = FbankConfig(sample_rate=8000, dither=1.0)
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(8080) * 1000).astype(np.float32)
    b = (rng.standard_normal(12000) * 1000).astype(np.float32)
    alone = fbank_utterances([a], cfg, seeds=[1])[0]
    assert alone.shape[0] == 99
    for batch_seconds in (200.0, 1.0):
        beside = fbank_utterances([a, b], cfg, seeds=[1, 2], batch_seconds=batch_seconds)[0]
        assert torch.equal(alone, beside), batch_seconds
    # and the seed does matter
    assert not torch.equal(alone, fbank_utterances([a], cfg, seeds=[2])[0])


def _outputs(rdir: Path) -> dict[str, bytes]:
    """Every file the stages wrote under data/ and exp/, but for the records of the run
    itself: logs (timings) and run.json (provenance, with the time of the run)."""
    return {str(p.relative_to(rdir)): p.read_bytes()
            for top in ("data", "exp") for p in sorted((rdir / top).rglob("*"))
            if p.is_file() and "log" not in p.relative_to(rdir).parts
            and p.name != "run.json"}


def test_gmm_stages_repeat_bit_for_bit(tmp_path, monkeypatch):
    """FSDD's CI config, stages 0-5 (data, lang, fbank + CMVN with dither, monophone and tri1
    GMMs, alignments) in two fresh copies of the recipe: every file equal, byte for byte."""
    corpus("fsdd")
    # Both runs on one thread: the same setting for both, and no OpenMP threads fighting over
    # cores that other tests share (on a busy 2-core CPU a realignment took 10-15x longer
    # with two threads than with one).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outputs = []
    for name in ("a", "b"):
        rdir = copy_recipe("fsdd", tmp_path / name)
        (rdir / "conf_ci" / "fbank.yaml").write_text(DITHER)
        proc = run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--stop-stage", "5",
                          timeout=600)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        assert proc.returncode == 0, f"fsdd stages 0-5 failed (run {name})"
        outputs.append(_outputs(rdir))
    a, b = outputs
    for f in ("data/train/feats.ark", "data/test/cmvn.ark", "exp/mono/final.mdl",
              "exp/tri1/final.mdl", "exp/tri1_ali_train/ali.ark", "exp/tri1_ali_train/tid.ark",
              "exp/tri1_ali_test/ali.ark", "exp/mono_ali_test/ali.ark"):
        assert f in a, f
    assert a.keys() == b.keys()
    differ = [f for f in a if a[f] != b[f]]
    assert not differ, f"files that differ between two runs: {differ}"
