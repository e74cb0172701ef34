"""How closely each system imitates the ensemble, frame by frame: where distillation stops.

For every system, on a data dir's frames: its frame accuracy against an alignment (when given),
the share of frames where its most likely pdf is the ensemble's ("agree"), the mean
KL(ensemble || system) at T = 1, and the share of frames the ensemble gets right and the system
wrong ("ens-only"). A student whose agreement on the frames it trained on (the transfer sets)
is no higher than on the test speakers' is underfitting the teacher, not failing to generalise.

    cd recipes/an4
    python ../../bench/agreement.py exp data/test --ali exp/tri1_ali_test \\
      student_big_hard student_big_kd student_big_kdt
    python ../../bench/agreement.py exp data/transfer_librispeech_dev_clean --utts 150 \\
      student_big_hard student_big_kdt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from asr_kd.acoustic import load_acoustic_model
from asr_kd.steps.common import load_dir_feats, read_alignments


def log_posteriors(model_path: Path, feats: list[torch.Tensor], batch: int = 16) -> torch.Tensor:
    """[frames, pdfs] over all utterances in order."""
    model = load_acoustic_model(model_path, "cpu")
    out = []
    for i in range(0, len(feats), batch):
        out += model.log_posteriors(feats[i:i + batch])
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exp", type=Path, help="the recipe's exp dir (exp/ensemble, exp/<system>)")
    p.add_argument("data", type=Path, help="a data dir with features (a transfer set too)")
    p.add_argument("systems", nargs="+", help="system dirs under exp")
    p.add_argument("--ali", type=Path, default=None, help="an alignment dir for frame accuracy")
    p.add_argument("--utts", type=int, default=0, help="every n-th utterance, n of them in "
                                                       "all (0: every utterance)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    d, feats = load_dir_feats(a.data, require_text=a.ali is not None)
    utts = sorted(feats)
    if a.utts:
        utts = utts[::max(1, len(utts) // a.utts)][:a.utts]
    ali = None
    if a.ali is not None:
        ali_all = read_alignments(a.ali, d, feats)
        utts = [u for u in utts if u in ali_all]
        ali = torch.from_numpy(np.concatenate([ali_all[u] for u in utts])).long()
    x = [torch.from_numpy(feats[u]) for u in utts]
    ens = log_posteriors(a.exp / "ensemble" / "final.pt", x)
    ens_best = ens.argmax(-1)
    print(f"{a.data}: {len(utts)} utterances, {len(ens)} frames")
    header = "| system | agree % | KL(ens \\|\\| system) |"
    if ali is not None:
        header += " frame acc % | ens-only % |"
        print(f"ensemble frame accuracy: {100 * (ens_best == ali).float().mean():.2f} %")
    print(header)
    print("|---" * header.count(" |") + "|")
    for name in a.systems:
        logp = log_posteriors(a.exp / name / "final.pt", x)
        best = logp.argmax(-1)
        kl = (ens.exp() * (ens - logp)).sum(-1).mean()
        row = f"| {name} | {100 * (best == ens_best).float().mean():.2f} | {kl:.3f} |"
        if ali is not None:
            ens_only = (ens_best == ali) & (best != ali)
            row += (f" {100 * (best == ali).float().mean():.2f} |"
                    f" {100 * ens_only.float().mean():.2f} |")
        print(row)


if __name__ == "__main__":
    main()
