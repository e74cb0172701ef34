"""Kaldi-style data directories and the audio they point at."""

from asr_kd.data.audio import AudioError, iter_utterance_audio, read_audio
from asr_kd.data.datadir import DataDir, DataDirError, is_pipe, load_data_dir, write_data_dir

__all__ = [
    "AudioError",
    "DataDir",
    "DataDirError",
    "is_pipe",
    "iter_utterance_audio",
    "load_data_dir",
    "read_audio",
    "write_data_dir",
]
