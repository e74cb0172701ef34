"""Kaldi-style data directories and the audio they point at."""

from asr_kd.data.audio import AudioError, iter_utterance_audio, read_audio
from asr_kd.data.datadir import (
    DataDir,
    DataDirError,
    is_pipe,
    load_data_dir,
    raise_first,
    write_data_dir,
)
from asr_kd.data.perturb import perturb_speed, perturb_vtln
from asr_kd.data.validate import Validation, validate_data_dir

__all__ = [
    "AudioError",
    "DataDir",
    "DataDirError",
    "is_pipe",
    "iter_utterance_audio",
    "load_data_dir",
    "perturb_speed",
    "perturb_vtln",
    "raise_first",
    "read_audio",
    "validate_data_dir",
    "Validation",
    "write_data_dir",
]
