"""The interface every trained acoustic model offers to decoding, scoring and distillation."""

from __future__ import annotations

import torch


class AcousticModel:
    """Utterances of features [T_i, F] in; per utterance, pdf scores out.

    A subclass sets `log_prior` ([P], the pdfs' log priors; zeros where scores are already
    likelihoods) and implements `log_posteriors`, `num_params` and `flops_per_frame`."""

    log_prior: torch.Tensor

    def log_posteriors(self, feats: list[torch.Tensor],
                       temperature: float = 1.0) -> list[torch.Tensor]:
        """Per utterance [T_i, P] log P(pdf | frame), at `temperature` (soft targets)."""
        raise NotImplementedError

    def scores(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per utterance (scaled log-likelihoods for decoding, log-posteriors for frame
        accuracy), float32."""
        return [(lp - self.log_prior.to(lp.device), lp) for lp in self.log_posteriors(feats)]

    @property
    def num_params(self) -> int:
        raise NotImplementedError

    def flops_per_frame(self, input_dim: int) -> int:
        raise NotImplementedError
