"""Decoding graphs (HCLG) and decoders."""
