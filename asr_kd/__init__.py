"""asr-kd: Kaldi-style hybrid acoustic models and their distillation, in PyTorch."""

__version__ = "0.1.0"
