"""The export directory: what `asr-kd export` writes and the runtime reads.

    model.onnx          feats [B, T, F] (CMVN-normalised fbank) -> loglikes [B, T, P]: the
                        pdfs' log-likelihoods log P(pdf | x) - log P(pdf), unscaled; the decoder
                        multiplies them by `decode.acoustic_scale` (1 / the LM weight)
    HCLG.fst            the decoding graph (OpenFst binary; input labels pdf + 1), with the
                        chosen word insertion penalty already on its word arcs
    words.txt           the graph's output symbols
    fbank.json          kaldi-native-fbank settings (asr_kd.features.FbankConfig's fields)
    global_cmvn.txt     Kaldi CMVN stats [2, F + 1] (text matrix) summed over the training data:
                        used for audio without a speaker
    manifest.json       format version, model facts (input dim, pdfs, context, frame shift,
                        precision), decode settings, provenance, versions, and the sha256 of
                        every file above
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "asr-kd-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
GRAPH = "HCLG.fst"
WORDS = "words.txt"
FBANK = "fbank.json"
GLOBAL_CMVN = "global_cmvn.txt"
FILES = (MODEL, GRAPH, WORDS, FBANK, GLOBAL_CMVN)


class ExportError(ValueError):
    """An export directory that is incomplete, altered or not one at all."""


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_kaldi_text_matrix(path, mat: np.ndarray) -> None:
    """A Kaldi text-format matrix (`copy-matrix --binary=false`)."""
    rows = "\n".join("  " + " ".join(repr(float(v)) for v in row) for row in np.asarray(mat))
    Path(path).write_text(f" [\n{rows} ]\n")


def read_kaldi_text_matrix(path) -> np.ndarray:
    text = Path(path).read_text()
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ExportError(f"{path}: not a Kaldi text matrix")
    rows = [r.split() for r in body[1:-1].strip().splitlines() if r.strip()]
    try:
        return np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError:
        raise ExportError(f"{path}: not a Kaldi text matrix") from None


@dataclass
class Bundle:
    """An export directory, checked: its manifest and the paths of its files."""

    path: Path
    manifest: dict

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def fbank(self) -> dict:
        return json.loads(self.file(FBANK).read_text())

    @property
    def global_cmvn(self) -> np.ndarray:
        return read_kaldi_text_matrix(self.file(GLOBAL_CMVN))

    @property
    def decode(self) -> dict:
        return self.manifest["decode"]


def load_bundle(path, verify: bool = True) -> Bundle:
    """Read EXPORT_DIR/manifest.json; with `verify`, every file must be there and match its
    sha256. ExportError names the directory and the file."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"{path}: no such export directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ExportError(f"{path}: missing {MANIFEST}; is this a directory `asr-kd export` "
                          "wrote?")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{mpath}: not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ExportError(f"{mpath}: not an asr-kd export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{mpath}: format version {manifest.get('format_version')}; this "
                          f"runtime reads version {FORMAT_VERSION}")
    for name in FILES:
        f = path / name
        if not f.is_file():
            raise ExportError(f"{path}: missing export file {name}")
        if verify:
            want = manifest.get("files", {}).get(name)
            got = sha256(f)
            if want != got:
                raise ExportError(f"{f}: sha256 {got} does not match the manifest's {want}; "
                                  "the file was changed after export")
    return Bundle(path, manifest)
