"""Acoustic model interface: the built-ins, user models by dotted path, and the start-up checks
that stop a model breaking the interface before any training."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from asr_kd.acoustic import UNSEEN_LOG_PRIOR, DnnAcousticModel, flops_per_frame
from asr_kd.nets import build_model
from asr_kd.nets.registry import builtin_models
from tests.conftest import REPO

F, P = 40, 62
BUILTINS = ["blstm", "cnn_tdnn", "conformer", "mlp", "tdnn"]
SMALL = {
    "mlp": {"hidden_dim": 32, "num_layers": 2},
    "tdnn": {"hidden_dim": 32, "layers": [[3, 1], [3, 2]]},
    "cnn_tdnn": {"conv_channels": [4], "freq_strides": [2], "hidden_dim": 32,
                 "layers": [[3, 1], [3, 2]]},
    "blstm": {"hidden_dim": 16, "num_layers": 2, "left_context": 4, "right_context": 4},
    "conformer": {"d_model": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 2,
                  "kernel_size": 5, "dropout": 0.0},
}
USER_MODEL = REPO / "examples" / "user_model"


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"class": name, "args": SMALL[name]}, F, P).eval()


def test_registry_has_the_builtins():
    assert builtin_models() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_shapes_and_padding(name):
    """[B, T, F] -> [B, T, P]; an utterance scores the same alone as padded in a batch."""
    m = small(name)
    torch.manual_seed(1)
    long, short = torch.randn(1, 30, F), torch.randn(1, 19, F)
    padded = torch.cat([short, short[:, -1:].expand(-1, 11, -1)], 1)
    with torch.no_grad():
        batch = m(torch.cat([long, padded]), torch.tensor([30, 19]))
        alone = m(short, torch.tensor([19]))
    assert batch.shape == (2, 30, P)
    torch.testing.assert_close(batch[1, :19], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,context", [("mlp", 5), ("tdnn", 3), ("cnn_tdnn", 4)])
def test_frame_models_look_at_their_declared_context_only(name, context):
    """Output frame t changes when frame t - left or t + right changes, and not when a frame
    just outside that window does; forward_inner is forward without the edge padding."""
    m = small(name)
    assert m.left_context == m.right_context == context
    torch.manual_seed(2)
    x = torch.randn(1, 40, F)
    t = 20
    with torch.no_grad():
        base = m(x)[0, t]
        for offset, inside in ((-context, True), (context, True), (-context - 1, False),
                               (context + 1, False)):
            y = x.clone()
            y[0, t + offset] += 5.0
            changed = not torch.allclose(m(y)[0, t], base, atol=1e-6)
            assert changed == inside, (offset, inside)
        torch.testing.assert_close(m.forward_inner(x), m(x)[:, context: 40 - context])


def test_flops_per_frame():
    """2 x weights per frame (a multiply-add is 2), plus attention's two T x T products per
    layer; fused LSTM and CPU attention kernels, which torch's counter misses, are counted."""
    for name in BUILTINS:
        m = small(name)
        flops = 2 * sum(p.numel() for n, p in m.named_parameters()
                        if "weight" in n and p.dim() > 1)
        if name == "cnn_tdnn":  # the 2-D convolution runs once per frequency bin it outputs
            flops += 2 * m.conv[0].weight.numel() * (F // 2 - 1)
        if name == "conformer":  # Q K^T and A V over the 64 frames counted, per layer
            flops += 2 * SMALL[name]["num_layers"] * 2 * 64 * SMALL[name]["d_model"]
        assert flops_per_frame(m, F) == flops, name


def test_user_model_by_dotted_path(monkeypatch):
    monkeypatch.syspath_prepend(str(USER_MODEL))
    spec = {"class": "light_conv:LightConvNet", "args": {"channels": 16, "num_blocks": 2}}
    m = build_model(spec, F, P)
    assert (m.left_context, m.right_context) == (4, 4)
    assert m(torch.zeros(3, 12, F), torch.tensor([12, 10, 9])).shape == (3, 12, P)


BROKEN = '''
import torch
from torch import nn

class WrongShape(nn.Module):
    left_context = right_context = 0
    def __init__(self, input_dim, num_pdfs):
        super().__init__()
        self.out = nn.Linear(input_dim, num_pdfs - 1)
    def forward(self, feats, lengths=None):
        return self.out(feats)

class NoContext(nn.Module):
    def __init__(self, input_dim, num_pdfs):
        super().__init__()
        self.out = nn.Linear(input_dim, num_pdfs)
    def forward(self, feats, lengths=None):
        return self.out(feats)

class Subsampling(NoContext):
    left_context, right_context = 2, 2.5
    def forward(self, feats, lengths=None):
        return self.out(feats[:, ::2])

class Crashes(NoContext):
    left_context = right_context = 1
    def forward(self, feats, lengths=None):
        return self.out(feats.transpose(1, 2))

class BadInner(NoContext):
    left_context = right_context = 3
    def forward_inner(self, feats):
        return self.out(feats)

def not_a_class():
    pass
'''


@pytest.fixture
def broken_models(tmp_path, monkeypatch):
    (tmp_path / "broken_models.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("broken_models", None)


@pytest.mark.parametrize("cls,args,message", [
    ("broken_models:WrongShape", {},
     "model 'broken_models:WrongShape' returned (2, 8, 61) for feats [2, 8, 40]; expected "
     "logits of shape [2, 8, 62] [batch, frames, num_pdfs]"),
    ("broken_models:NoContext", {},
     "model 'broken_models:NoContext' must declare 'left_context' as an integer >= 0 (frames "
     "of context it looks at); it has None"),
    ("broken_models:Subsampling", {},
     "model 'broken_models:Subsampling' must declare 'right_context' as an integer >= 0 "
     "(frames of context it looks at); it has 2.5"),
    ("broken_models:Crashes", {},
     "model 'broken_models:Crashes' fails on a probe batch feats [2, 10, 40] with lengths "
     "[10, 7]: RuntimeError: mat1 and mat2 shapes cannot be multiplied (80x10 and 40x62)"),
    ("broken_models:BadInner", {},
     "model 'broken_models:BadInner': forward_inner returned (2, 14, 62) for feats "
     "[2, 14, 40]; expected [2, 8, 62] (frames minus the declared context 3 + 3)"),
    ("broken_models:not_a_class", {},
     "model class 'broken_models:not_a_class' is not a torch.nn.Module subclass"),
    ("broken_models:Missing", {},
     "model class 'broken_models:Missing': module 'broken_models' has no 'Missing'"),
    ("no_such_pkg.models:Net", {},
     "model class 'no_such_pkg.models:Net': cannot import module 'no_such_pkg.models' (No "
     "module named 'no_such_pkg'); is its directory on PYTHONPATH?"),
    ("tdnnn", {},
     "unknown model 'tdnnn' (built-ins: blstm, cnn_tdnn, conformer, mlp, tdnn; or give "
     "'package.module:Class')"),
    ("tdnn", {"hiden_dim": 64},
     "model 'tdnn': cannot construct it with input_dim=40, num_pdfs=62 and args "
     "{'hiden_dim': 64}: Tdnn.__init__() got an unexpected keyword argument 'hiden_dim'"),
    ("tdnn", {"layers": [[4, 1]]},
     "TDNN layer [4, 1]: kernel must be odd and >= 1, dilation >= 1"),
])
def test_a_model_that_breaks_the_interface_fails_at_start_up(broken_models, cls, args, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        build_model({"class": cls, "args": args}, F, P)


def test_a_pdf_unseen_in_training_gets_a_negligible_likelihood():
    """Scaled likelihoods are log posterior minus log prior; a pdf with no training frames has
    no prior, and must not be lifted by dividing by a floor (Kaldi's nnet1 sinks it too)."""
    torch.manual_seed(0)
    net = build_model({"class": "mlp", "args": {"hidden_dim": 8, "num_layers": 1}}, 4, 3)
    model = DnnAcousticModel(net, {"class": "mlp", "args": {}}, np.array([10.0, 0.0, 30.0]))
    (ll, logp), = model.scores([torch.randn(20, 4)])
    assert torch.allclose(ll[:, [0, 2]], logp[:, [0, 2]] - torch.log(torch.tensor([0.25, 0.75])))
    assert torch.equal(ll[:, 1], logp[:, 1] - UNSEEN_LOG_PRIOR)
    assert bool((ll[:, 1] < ll[:, [0, 2]].min(-1).values - 1000).all())
