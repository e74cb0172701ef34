"""int8 models with onnxruntime's quantization.

Matrix products (MatMul, Gemm: the MLP layers, the output layer, attention) are quantized
dynamically: weights to int8 ahead of time, activations per batch at run time. Convolutions
(TDNN, CNN-TDNN) are left in float by dynamic quantization, so they are quantized statically
first (QDQ, per-channel weights), with activation ranges calibrated on training features: never
on test data.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from asr_kd.export.onnx_model import INPUT


class _Calibration:
    """onnxruntime's CalibrationDataReader over [T, F] feature matrices, one per run."""

    def __init__(self, feats: Iterable[np.ndarray]):
        self.items = iter([{INPUT: f[None].astype(np.float32)} for f in feats])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):  # onnxruntime >= 1.17 may call it; the reader is used once
        pass


def has_convolutions(path) -> bool:
    return any(n.op_type == "Conv" for n in onnx.load(str(path)).graph.node)


def quantize_int8(fp32_path, out_path, calibration: list[np.ndarray]) -> dict:
    """Write the int8 model of `fp32_path` to `out_path`; returns what was done (for the
    manifest)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    done = {"dynamic": ["MatMul", "Gemm"], "static": []}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        src = pre
        if has_convolutions(pre):
            if not calibration:
                raise ValueError("static quantization of convolutions needs calibration features")
            static = Path(tmp) / "static.onnx"
            quantize_static(str(pre), str(static), _Calibration(calibration),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                            per_channel=True, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            done["static"] = ["Conv"]
            done["calibration_utterances"] = len(calibration)
            src = static
        # On the statically quantized model it warns "check if the model is already
        # quantized": it is, on purpose, in its convolutions only.
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR
        try:
            quantize_dynamic(str(src), str(out_path), op_types_to_quantize=["MatMul", "Gemm"],
                             weight_type=QuantType.QInt8, per_channel=False)
        finally:
            root.setLevel(level)
    return done
