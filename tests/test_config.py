"""Stage configs: a conf_* overlay merged over conf/'s file key by key (mappings recursively,
lists and scalars replace), and an unknown key naming the file that has it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from asr_kd.cli import build_parser, stage_config
from asr_kd.decode.reference import DecodeConfig
from asr_kd.utils.config import load_config, merge


@dataclasses.dataclass
class Inner:
    alpha: float = 0.5
    temperature: float = 2.0


@dataclasses.dataclass
class Cfg:
    model: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    realign_iters: list = dataclasses.field(default_factory=lambda: [10, 20, 30])
    distill: Inner = dataclasses.field(default_factory=Inner)


BASE = """
model:
  class: mlp
  args: {left_context: 5, right_context: 5, hidden_dim: 512, dropout: 0.1}
epochs: 20
realign_iters: [10, 20, 30]
distill: {alpha: 0.5, temperature: 2.0}
"""
OVERLAY = """
model:
  args: {hidden_dim: 64}
epochs: 2
realign_iters: [6]
distill: {temperature: 5.0}
"""


def test_merge_rule():
    base = {"m": {"a": 1, "b": {"c": 2, "d": 3}}, "l": [1, 2, 3], "s": 1, "keep": "x"}
    overlay = {"m": {"b": {"d": 4}, "e": 5}, "l": [9], "s": 2, "new": None}
    assert merge(base, overlay) == {"m": {"a": 1, "b": {"c": 2, "d": 4}, "e": 5}, "l": [9],
                                    "s": 2, "keep": "x", "new": None}
    assert base["m"]["b"] == {"c": 2, "d": 3} and base["l"] == [1, 2, 3]  # inputs unchanged
    # a list over a mapping (conf_mixed's list of teacher models), a mapping over a scalar
    assert merge({"model": {"class": "mlp"}}, {"model": [{"class": "tdnn"}]}) == \
        {"model": [{"class": "tdnn"}]}
    assert merge({"x": 1}, {"x": {"y": 2}}) == {"x": {"y": 2}}


def test_load_base_then_overlay(tmp_path):
    base, overlay = tmp_path / "conf" / "x.yaml", tmp_path / "conf_ci" / "x.yaml"
    for path, text in ((base, BASE), (overlay, OVERLAY)):
        path.parent.mkdir()
        path.write_text(text)
    cfg = load_config(Cfg, [base, overlay])
    assert cfg.model == {"class": "mlp", "args": {"left_context": 5, "right_context": 5,
                                                  "hidden_dim": 64, "dropout": 0.1}}
    assert cfg.epochs == 2 and cfg.realign_iters == [6]
    assert cfg.distill == Inner(alpha=0.5, temperature=5.0)
    # one path as before; --set overrides come last
    assert load_config(Cfg, base).epochs == 20
    assert load_config(Cfg, [base, overlay], ["distill.alpha=0"]).distill.alpha == 0
    assert load_config(Cfg, None) == Cfg() == load_config(Cfg, [])


def test_unknown_key_names_the_file_that_has_it(tmp_path):
    base, overlay = tmp_path / "base.yaml", tmp_path / "overlay.yaml"
    b, o = re.escape(str(base)), re.escape(str(overlay))
    base.write_text(BASE)
    overlay.write_text("epochs: 2\nepoch: 3\n")
    with pytest.raises(ValueError, match=f"^{o}: unknown key 'epoch' for Cfg "):
        load_config(Cfg, [base, overlay])
    overlay.write_text("distill: {temprature: 5.0}\n")
    with pytest.raises(ValueError, match=f"^{o}.distill: unknown key 'temprature' for Inner "):
        load_config(Cfg, [base, overlay])
    base.write_text(BASE + "bogus: 1\n")
    overlay.write_text("epochs: 2\n")
    with pytest.raises(ValueError, match=f"^{b}: unknown key 'bogus'"):
        load_config(Cfg, [base, overlay])
    overlay.write_text("- 1\n")
    with pytest.raises(ValueError, match=f"^{o}: expected a mapping of config keys"):
        load_config(Cfg, [overlay])


def test_cli_config_given_twice(tmp_path: Path):
    """stages.sh passes `--config conf/X --config conf_ci/X` where the overlay has X."""
    base, overlay = tmp_path / "base.yaml", tmp_path / "overlay.yaml"
    base.write_text("acoustic_scale: 0.1\nbeam: 13.0\nmax_active: 7000\n")
    overlay.write_text("beam: 10.0\n")
    args = build_parser().parse_args(["decode", "m", "g", "d", "o", "--system", "s",
                                      "--config", str(base), "--config", str(overlay)])
    assert stage_config(DecodeConfig, args) == DecodeConfig(acoustic_scale=0.1, beam=10.0,
                                                    max_active=7000)
    args = build_parser().parse_args(["decode", "m", "g", "d", "o", "--system", "s"])
    assert stage_config(DecodeConfig, args) == DecodeConfig()
