"""WER in Kaldi's format, frame accuracy, and the results report."""

from asr_kd.score.wer import WerResult, compute_wer

__all__ = ["WerResult", "compute_wer"]
