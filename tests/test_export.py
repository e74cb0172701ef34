"""Export (asr_kd.export) and the torch-free runtime (runtime/, asr_kd_runtime) in parts: every
built-in architecture exports and scores as torch does, a model that cannot be exported names
its operator, the runtime's resampler is torchaudio's, and an export dir that is incomplete or
altered is refused by name. End to end on a trained recipe: tests/test_recipe_fsdd.py."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from asr_kd_runtime.audio import AudioError, read_audio, resample
from asr_kd_runtime.bundle import (
    FILES,
    MANIFEST,
    ExportError,
    load_bundle,
    read_kaldi_text_matrix,
    sha256,
    write_kaldi_text_matrix,
)

from asr_kd.acoustic.dnn import DnnAcousticModel, EnsembleAcousticModel
from asr_kd.export import export_onnx, scoring_module
from asr_kd.nets import build_model

ARCHS = {
    "mlp": {"left_context": 3, "right_context": 3, "hidden_dim": 32, "num_layers": 2},
    "tdnn": {"hidden_dim": 32, "layers": [[5, 1], [3, 3]]},
    "cnn_tdnn": {"conv_channels": [4, 8], "freq_strides": [1, 2], "hidden_dim": 32},
    "blstm": {"hidden_dim": 16, "num_layers": 1},
    "conformer": {"d_model": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 64,
                  "kernel_size": 5},
}
DIM, PDFS = 40, 30


def _model(arch: str, seed: int = 0) -> DnnAcousticModel:
    torch.manual_seed(seed)
    net = build_model({"class": arch, "args": ARCHS[arch]}, DIM, PDFS).eval()
    counts = np.arange(1, PDFS + 1, dtype=np.float64)
    counts[3] = 0  # an unseen pdf: its log prior is UNSEEN_LOG_PRIOR, folded in too
    return DnnAcousticModel(net, {"class": arch, "args": ARCHS[arch]}, counts)


def _run(path, feats: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"feats": feats[None].astype(np.float32)})[0][0]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_exports_and_scores_as_torch(arch, tmp_path):
    model = _model(arch)
    path = export_onnx(scoring_module(model), DIM, tmp_path / "m.onnx")
    for frames in (7, 161):  # time is a dynamic axis: lengths other than the traced 200
        x = torch.randn(frames, DIM)
        want = model.scores([x])[0][0].numpy()
        got = _run(path, x.numpy())
        assert got.shape == (frames, PDFS)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_an_ensemble_exports_as_one_graph(tmp_path):
    ens = EnsembleAcousticModel([_model("mlp", 1), _model("tdnn", 2)], "arithmetic")
    path = export_onnx(scoring_module(ens), DIM, tmp_path / "e.onnx")
    x = torch.randn(50, DIM)
    np.testing.assert_allclose(_run(path, x.numpy()), ens.scores([x])[0][0].numpy(),
                               rtol=1e-4, atol=1e-3)


class _Unexportable(torch.nn.Module):
    def __init__(self, input_dim: int, num_pdfs: int):
        super().__init__()
        self.left_context = self.right_context = 0
        self.proj = torch.nn.Linear(input_dim, num_pdfs)

    def forward(self, feats, lengths=None):
        # A running maximum over time: torch's ONNX exporter has no conversion for cummax.
        return self.proj(torch.cummax(feats, dim=1)[0])


def test_a_model_that_cannot_be_exported_names_the_operator(tmp_path):
    model = DnnAcousticModel(_Unexportable(DIM, PDFS), {"class": "x"}, np.ones(PDFS))
    with pytest.raises(ValueError, match=r"^_Unexportable cannot be exported to ONNX: operator "
                                         r"aten.cummax has no ONNX conversion$"):
        export_onnx(scoring_module(model), DIM, tmp_path / "u.onnx")


@pytest.mark.parametrize("rates", [(16000, 8000), (8000, 16000), (44100, 16000),
                                   (14400, 16000)])
def test_resample_is_torchaudios(rates):
    import torchaudio.functional as F

    x = (np.random.default_rng(0).standard_normal(12345) * 3000).astype(np.float32)
    want = F.resample(torch.from_numpy(x), *rates).numpy()
    got = resample(x, *rates)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.1  # int16 scale: float32 rounding in torchaudio


def test_kaldi_text_matrix_round_trip(tmp_path):
    m = np.array([[1.5, -2.0, 3e10], [0.25, 0.0, 0.0]])
    write_kaldi_text_matrix(tmp_path / "m.txt", m)
    assert (tmp_path / "m.txt").read_text().startswith(" [\n")
    np.testing.assert_array_equal(read_kaldi_text_matrix(tmp_path / "m.txt"), m)


def test_audio_errors_name_the_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("not audio at all\n")
    with pytest.raises(AudioError, match=r"empty.wav': file is empty \(0 bytes\)"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match=r"notes.wav': cannot read: "):
        read_audio(tmp_path / "notes.wav")
    with pytest.raises(AudioError, match=r"gone.wav': file does not exist"):
        read_audio(tmp_path / "gone.wav")


def test_bundle_errors(tmp_path):
    with pytest.raises(ExportError, match="no such export directory"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(ExportError, match="missing manifest.json"):
        load_bundle(tmp_path)
    files = {}
    for name in FILES:
        (tmp_path / name).write_text(name)
        files[name] = sha256(tmp_path / name)
    manifest = {"format": "asr-kd-export", "format_version": 1, "files": files}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    assert load_bundle(tmp_path).manifest["files"] == files
    (tmp_path / "words.txt").write_text("changed")
    with pytest.raises(ExportError, match=r"words.txt: sha256 \w+ does not match the "
                                          r"manifest's \w+; the file was changed after export"):
        load_bundle(tmp_path)
    (tmp_path / "HCLG.fst").unlink()
    with pytest.raises(ExportError, match="missing export file HCLG.fst"):
        load_bundle(tmp_path)
    manifest["format_version"] = 99
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="format version 99; this runtime reads version 1"):
        load_bundle(tmp_path)


def test_the_runtime_imports_neither_torch_nor_asr_kd():
    """Read from the source, every import of every runtime module (the subprocess test with
    torch hidden, in test_recipe_fsdd.py, runs it)."""
    import ast
    from pathlib import Path

    import asr_kd_runtime

    for path in Path(asr_kd_runtime.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in {"torch", "torchaudio", "asr_kd"}, f"{path.name}: {name}"
