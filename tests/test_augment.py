"""SpecAugment-style masks on training windows: their shape and statistics, the config's errors,
a resumed run that draws the same masks, and online teachers that label the masked windows."""

from __future__ import annotations

import pytest
import torch

from asr_kd.train.augment import AugmentConfig, spec_augment
from asr_kd.train.distill import DistillConfig
from asr_kd.train.members import LoopMembers
from asr_kd.train.trainer import TeacherTargets, TrainConfig, train_members
from asr_kd.utils.config import from_dict
from asr_kd.utils.runtime import runtime_policy
from tests.test_distill import SPEC, _yesno_feats

CPU = torch.device("cpu")


def test_masks_are_whole_bands_and_runs_of_the_drawn_widths():
    torch.manual_seed(0)
    cfg = AugmentConfig(freq_masks=1, freq_width=8, time_masks=1, time_width=5)
    x = torch.randn(4000, 30, 40) + 10.0  # no value is zero before masking
    out = spec_augment(x, cfg)
    zero = out == 0
    chans = zero.all(1)  # [B, D]: channels zeroed in every frame
    frames = zero.all(2)  # [B, W]: frames zeroed in every channel
    # Every zero lies in a masked channel or frame, and the rest is untouched.
    assert torch.equal(zero, chans[:, None, :] | frames[:, :, None])
    assert torch.equal(out[~zero], x[~zero])
    # One mask each: a contiguous run, its width uniform over 0 .. width (mean width / 2).
    for mask, width in ((chans, 8), (frames, 5)):
        n = mask.sum(1)
        assert int(n.max()) == width and int(n.min()) == 0
        assert abs(float(n.float().mean()) - width / 2) < 0.15
        first = mask.float().argmax(1)
        span = torch.arange(mask.shape[1])
        run = (span >= first[:, None]) & (span < (first + n)[:, None])
        assert torch.equal(mask, run & (n > 0)[:, None])
    # Both edges can be masked.
    assert chans[:, 0].any() and chans[:, -1].any() and frames[:, 0].any() and frames[:, -1].any()


def test_no_masks_leaves_the_windows_as_they_are():
    x = torch.randn(3, 10, 40)
    assert spec_augment(x, AugmentConfig()) is x
    assert spec_augment(x, AugmentConfig(freq_masks=2, freq_width=0)) is x


def test_a_bad_augment_key_or_value_is_named():
    with pytest.raises(ValueError, match=r"^augment: time_width must be an integer >= 0 "
                                         r"\(got -1\)$"):
        AugmentConfig(time_width=-1)
    with pytest.raises(ValueError, match=r"config\.augment: unknown key 'freq_mask' for "
                                         r"AugmentConfig"):
        from_dict(TrainConfig, {"augment": {"freq_mask": 2}})


def test_resumed_run_draws_the_same_masks(tmp_path):
    feats, targets = _yesno_feats(4)
    cfg = from_dict(TrainConfig, {
        "model": SPEC, "epochs": 3, "batch_size": 16, "chunk_size": 8, "valid_fraction": 0.25,
        "seed": 3, "augment": {"freq_masks": 2, "freq_width": 8, "time_masks": 1,
                               "time_width": 4}})
    _, whole = train_members(cfg, feats, targets, 4, tmp_path / "whole", CPU)
    cfg.epochs = 2
    train_members(cfg, feats, targets, 4, tmp_path / "killed", CPU)
    cfg.epochs = 3
    _, resumed = train_members(cfg, feats, targets, 4, tmp_path / "killed", CPU)
    figures = [e["members"] for e in whole]
    assert figures == [e["members"] for e in resumed]
    # The masks change what is learnt: the same run without them ends elsewhere.
    cfg.augment = AugmentConfig()
    _, unmasked = train_members(cfg, feats, targets, 4, tmp_path / "plain", CPU)
    assert unmasked[-1]["members"][0]["train_loss"] != whole[-1]["members"][0]["train_loss"]


def test_online_teachers_on_masked_windows_are_less_sure(tmp_path):
    """Consistent teaching: the teachers label the window the student sees. Teachers trained on
    clean yesno windows give flatter targets for masked ones, and those are what the student
    is taught; a top-k cache would hold their near one-hot view of the clean window."""
    feats, targets = _yesno_feats(6)
    cfg = TrainConfig(model=SPEC, members=2, epochs=3, batch_size=32, chunk_size=8, lr=2e-3,
                      valid_fraction=0.2, seed=3)
    models, _ = train_members(cfg, feats, targets, 4, tmp_path, CPU)
    soft = TeacherTargets(LoopMembers(models), DistillConfig(alpha=0.8, temperature=1.0),
                          runtime_policy(CPU, False))
    # Windows of 8 frames with 2 of context each side (SPEC's), from the first recording.
    x = torch.from_numpy(feats[sorted(feats)[0]][:240]).reshape(20, 12, 40)
    torch.manual_seed(0)
    masked = spec_augment(x, AugmentConfig(freq_masks=2, freq_width=10, time_masks=1,
                                           time_width=6))

    def entropy(windows):
        logp = soft(windows, None, 2, 8)["soft_logp"]
        return float(-(logp.exp() * logp).sum(-1).mean())

    assert entropy(masked) > entropy(x) + 0.05
