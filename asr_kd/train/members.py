"""Several acoustic models trained side by side: an ensemble's members, or a sweep of students.

Two interchangeable forms, chosen by `make_members`:
- `StackedMLP`: E spliced MLPs of one shape held as [E, in, out] weights, so every layer is one
  batched matmul for all members (what makes ensembles cheap on a GPU);
- `LoopMembers`: any list of models (mixed architectures too), run one after another.
Member k is initialised by seeding torch with `seed + k` before building it, in both forms, so
for the same seeds they start from, and train to, the same numbers (without dropout: the two
forms draw different dropout masks).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from asr_kd.nets.mlp import SplicedMLP, splice
from asr_kd.nets.registry import build_model


def crop_center(model: nn.Module, x: torch.Tensor, left: int, chunk: int) -> torch.Tensor:
    """Logits of the `chunk` frames after `left` frames of context in window x [B, W, F], for a
    model that needs only its own (smaller or equal) context: the window is cut to fit it."""
    lc, rc = model.left_context, model.right_context
    x = x[:, left - lc: left + chunk + rc]
    if hasattr(model, "forward_inner"):  # a model that can skip the context frames' outputs
        return model.forward_inner(x)
    logits = model(x, torch.full((x.shape[0],), x.shape[1], device=x.device))
    return logits[:, lc: lc + chunk]


class LoopMembers(nn.Module):
    def __init__(self, models: list[nn.Module]):
        super().__init__()
        self.models = nn.ModuleList(models)
        self.left_context = max(m.left_context for m in models)
        self.right_context = max(m.right_context for m in models)

    def __len__(self) -> int:
        return len(self.models)

    def center_logits(self, x: torch.Tensor, left: int, chunk: int) -> torch.Tensor:
        """[B, W, F] window (or [E, B, W, F]: one batch per member) -> [E, B, chunk, P]."""
        xs = x if x.dim() == 4 else [x] * len(self.models)
        return torch.stack([crop_center(m, xk, left, chunk) for m, xk in zip(self.models, xs)])

    def member_params(self) -> list[tuple[torch.Tensor, int | None]]:
        return [(p, k) for k, m in enumerate(self.models) for p in m.parameters()]

    def member_state(self, k: int) -> dict:
        return {n: t.detach().clone() for n, t in self.models[k].state_dict().items()}

    def load_member_state(self, k: int, state: dict) -> None:
        self.models[k].load_state_dict(state)

    def to_models(self) -> list[nn.Module]:
        return [copy.deepcopy(m) for m in self.models]


class StackedMLP(nn.Module):
    """E same-shape `SplicedMLP`s as one module: weights [E, out, in], biases [E, out]."""

    def __init__(self, models: list[SplicedMLP]):
        super().__init__()
        first = models[0]
        self.left_context, self.right_context = first.left_context, first.right_context
        # Shape and hyper-parameters for unstacking; in a list so it is not a registered
        # submodule (its parameters are not trained).
        self._template = [copy.deepcopy(first).cpu()]
        linears = [[m for m in net.net if isinstance(m, nn.Linear)] for net in models]
        self.dropout = next((m.p for m in first.net if isinstance(m, nn.Dropout)), 0.0)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].weight.detach() for ls in linears]))
             for i in range(len(linears[0]))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears]))
             for i in range(len(linears[0]))])

    def __len__(self) -> int:
        return self.weights[0].shape[0]

    def forward_all(self, feats: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """[B, T, F] (one input for every member) or [E, B, T, F] (one each) -> [E, B, T, P];
        pad=False: only the frames with all their context in feats, [E, B, T - left - right, P].
        """
        per_member = feats.dim() == 4
        h = splice(feats.flatten(0, 1) if per_member else feats, self.left_context,
                   self.right_context, pad)
        b, t = (feats.shape[1] if per_member else h.shape[0]), h.shape[1]
        # [E, B*T, D] or [B*T, D]: the first matmul broadcasts the latter over the members
        h = h.reshape(len(self), b * t, -1) if per_member else h.reshape(b * t, -1)
        h = torch.matmul(h, self.weights[0].transpose(1, 2)) + self.biases[0][:, None]
        for w, bias in zip(self.weights[1:], self.biases[1:]):
            h = torch.relu(h)
            if self.dropout > 0:
                h = nn.functional.dropout(h, self.dropout, self.training)
            h = torch.baddbmm(bias[:, None], h, w.transpose(1, 2))
        return h.reshape(len(self), b, t, -1)

    def center_logits(self, x: torch.Tensor, left: int, chunk: int) -> torch.Tensor:
        lc, rc = self.left_context, self.right_context
        return self.forward_all(x[..., left - lc: left + chunk + rc, :], pad=False)

    def member_params(self) -> list[tuple[torch.Tensor, int | None]]:
        return [(p, None) for p in self.parameters()]

    def _linear_names(self) -> list[str]:
        return [n for n, m in self._template[0].named_modules() if isinstance(m, nn.Linear)]

    def member_state(self, k: int) -> dict:
        state = {}
        for name, w, b in zip(self._linear_names(), self.weights, self.biases):
            state[f"{name}.weight"] = w[k].detach().clone()
            state[f"{name}.bias"] = b[k].detach().clone()
        return state

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict) -> None:
        for name, w, b in zip(self._linear_names(), self.weights, self.biases):
            w[k].copy_(state[f"{name}.weight"])
            b[k].copy_(state[f"{name}.bias"])

    def to_models(self) -> list[nn.Module]:
        out = []
        for k in range(len(self)):
            m = copy.deepcopy(self._template[0]).to(self.weights[0].device)
            m.load_state_dict(self.member_state(k))
            out.append(m)
        return out


def build_members(specs: list[dict], seeds: list[int], input_dim: int,
                  num_pdfs: int) -> list[nn.Module]:
    members = []
    for spec, seed in zip(specs, seeds):
        torch.manual_seed(seed)
        members.append(build_model(spec, input_dim, num_pdfs))
    return members


def can_stack(specs: list[dict]) -> bool:
    return len(specs) > 1 and all(s == specs[0] for s in specs) and specs[0]["class"] == "mlp"


def group_members(models: list[nn.Module], specs: list[dict],
                  stacked: bool) -> StackedMLP | LoopMembers:
    """Built models as one stacked module (`stacked` and same-shape MLPs) or a loop."""
    if stacked and can_stack(specs):
        return StackedMLP(models)
    return LoopMembers(models)


def make_members(specs: list[dict], seeds: list[int], input_dim: int, num_pdfs: int,
                 stacked: bool) -> StackedMLP | LoopMembers:
    """New members, member k seeded with seeds[k], stacked or in a loop (`group_members`)."""
    return group_members(build_members(specs, seeds, input_dim, num_pdfs), specs, stacked)
