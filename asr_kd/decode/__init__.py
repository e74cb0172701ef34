"""Decoding graphs (HCLG) and the decoders over them, behind one interface (decode/base.py):
`reference`, kaldi-decoder's FasterDecoder on the CPU (reference.py), and `torch`, our batched
search on any device (torch_decoder.py, over a device_graph.DeviceGraph); `auto`, the default,
picks the torch decoder on a GPU and the reference on the CPU."""

from asr_kd.decode.base import (
    DEFAULT_DECODER,
    DecodeConfig,
    Decoder,
    Hypothesis,
    decode_marker,
    decoder_names,
    make_decoder,
    register_decoder,
    resolve_decoder,
)
from asr_kd.decode.device_graph import DeviceGraph
from asr_kd.decode.reference import ReferenceDecoder
from asr_kd.decode.torch_decoder import TorchDecoder

__all__ = [
    "DEFAULT_DECODER",
    "DecodeConfig",
    "Decoder",
    "DeviceGraph",
    "Hypothesis",
    "ReferenceDecoder",
    "TorchDecoder",
    "decode_marker",
    "decoder_names",
    "make_decoder",
    "register_decoder",
    "resolve_decoder",
]
