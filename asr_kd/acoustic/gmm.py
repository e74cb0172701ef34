"""A GMM-HMM scored like the DNNs: its log-likelihoods decode and give frame accuracy."""

from __future__ import annotations

import torch

from asr_kd.acoustic.base import AcousticModel
from asr_kd.hmm.model import GmmHmm


class GmmAcousticModel(AcousticModel):
    def __init__(self, model: GmmHmm):
        self.model = model

    @property
    def num_params(self) -> int:
        """The Gaussians' means, variances and weights, and a learned feature matrix (tri2's
        LDA+MLLT) if the model carries one."""
        g = self.model.gmm
        n = int(torch.isfinite(g.log_weights).sum())
        m = self.model.feature.transform
        return n * (2 * g.means.shape[-1] + 1) + (0 if m is None else m.numel())

    def flops_per_frame(self, input_dim: int) -> int:
        """Per Gaussian, two length-D dot products (x . mu/var and x^2 . 1/var); and the
        feature matrix's product with the spliced frame, if any."""
        g = self.model.gmm
        m = self.model.feature.transform
        return (int(torch.isfinite(g.log_weights).sum()) * 4 * g.means.shape[-1]
                + (0 if m is None else 2 * m.numel()))

    def log_posteriors(self, feats: list[torch.Tensor],
                       temperature: float = 1.0) -> list[torch.Tensor]:
        """The pdfs' posteriors under flat priors: softmax of the log-likelihoods / T."""
        return [torch.log_softmax(self.model.log_likelihoods(f) / temperature, -1)
                for f in feats]

    def scores(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A GMM's log-likelihoods serve both: the decoder's and frame accuracy's argmax."""
        out = []
        for f in feats:
            ll = self.model.log_likelihoods(f)
            out.append((ll, ll))
        return out
