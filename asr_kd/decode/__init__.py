"""Decoding graphs (HCLG) and decoders."""

# The decoders over an HCLG: kaldi-decoder's FasterDecoder on the CPU (reference.py) and our
# batched torch search on any device (torch_decoder.py).
DECODERS = ("reference", "torch")


def decode_marker(decoder: str) -> str:
    """The done-marker of a decode dir names its decoder: switching decoders redoes it."""
    return f"done_{decoder}"
