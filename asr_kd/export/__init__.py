"""The deployable model: an acoustic model as ONNX (float32, or int8 with onnxruntime's
quantization), written with its graph, fbank settings and CMVN as the directory the torch-free
runtime (`runtime/`, asr_kd_runtime) reads."""

from asr_kd.export.onnx_model import export_onnx, scoring_module
from asr_kd.export.quantize import quantize_int8

__all__ = ["export_onnx", "quantize_int8", "scoring_module"]
