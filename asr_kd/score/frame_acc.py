"""Frame accuracy: share of frames whose most likely pdf is the aligned one."""

from __future__ import annotations

import numpy as np


def frame_accuracy(pred: dict[str, np.ndarray], ali: dict[str, np.ndarray]) -> tuple[float, int]:
    """(accuracy %, frames counted) over utterances present in both; lengths must agree."""
    correct = total = 0
    for utt in sorted(set(pred) & set(ali)):
        p, a = pred[utt], ali[utt]
        if len(p) != len(a):
            raise ValueError(f"utterance '{utt}': {len(p)} frames scored but the alignment has "
                             f"{len(a)}")
        correct += int((p == a).sum())
        total += len(a)
    return (100.0 * correct / total if total else float("nan")), total
