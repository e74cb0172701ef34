"""Frame accuracy of any systems on a student config's validation utterances.

The trainer logs each run's own validation accuracy; the ensemble has none (train-teachers
validates its members alone). This scores every system on the utterances a config's
`split_utts` holds out, so that kept can be read on validation, where settings are chosen:
(distilled - hard) / (ensemble - hard).

    cd recipes/an4
    python ../../bench/valid_acc.py conf/student.yaml data/train_sp exp/tri1_ali_train_sp \\
      ensemble student_big_hard student_big_kdt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from asr_kd.acoustic import load_acoustic_model
from asr_kd.steps.common import load_dir_feats, read_alignments
from asr_kd.train.trainer import TrainConfig, split_utts
from asr_kd.utils.config import load_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="the student config whose split is used (valid_fraction, "
                                  "split_seed)")
    p.add_argument("data", type=Path, help="the training data dir (with features)")
    p.add_argument("ali", type=Path, help="its alignment dir (the targets)")
    p.add_argument("systems", nargs="+", help="system dirs under --exp")
    p.add_argument("--exp", type=Path, default=Path("exp"))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load_config(TrainConfig, a.config)
    d, feats = load_dir_feats(a.data)
    ali = read_alignments(a.ali, d, feats)
    _, valid = split_utts([u for u in feats if u in ali], cfg)
    print(f"{len(valid)} validation utterances, {sum(len(ali[u]) for u in valid)} frames")
    for name in a.systems:
        model = load_acoustic_model(a.exp / name / "final.pt", "cpu")
        hit = n = 0
        for i in range(0, len(valid), 16):
            batch = valid[i:i + 16]
            logp = model.log_posteriors([torch.from_numpy(feats[u]) for u in batch])
            for u, lp in zip(batch, logp):
                target = torch.from_numpy(ali[u]).long()
                hit += int((lp.argmax(-1) == target).sum())
                n += len(target)
        print(f"{name}: {100 * hit / n:.2f} %")


if __name__ == "__main__":
    main()
