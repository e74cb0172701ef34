"""asr-kd's runtime: transcribe audio with a directory that `asr-kd export` wrote (model.onnx,
HCLG.fst, words.txt, fbank settings, CMVN, manifest.json), with onnxruntime, kaldi-native-fbank
and kaldi-decoder. It imports no torch, so it installs where torch cannot go."""

from asr_kd_runtime.audio import AudioError, read_audio, resample
from asr_kd_runtime.bundle import Bundle, ExportError, load_bundle
from asr_kd_runtime.recognizer import Recognizer, Result

__all__ = ["AudioError", "Bundle", "ExportError", "Recognizer", "Result", "load_bundle",
           "read_audio", "resample"]
