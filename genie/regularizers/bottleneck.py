"""MMIB's refinement regularizer: a variational information bottleneck on one modality.

Each position is mapped to a Gaussian; training reads a reparameterised sample and pays its KL
to N(0, I), so only what the task needs survives the noise. Inference reads the mean.
"""

from __future__ import annotations

import torch
from torch import nn

# Starting log-variance: sigma ~ 0.05, so a pretrained backbone's inputs start nearly unchanged.
INITIAL_LOGVAR = -6.0


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) in nats per dimension, averaged over the masked-in
    positions. mean, logvar: (B, L, d); mask: (B, L) bool."""
    per_dim = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    weights = mask.to(per_dim.dtype)
    return (per_dim.mean(-1) * weights).sum() / weights.sum().clamp(min=1.0)


class VariationalBottleneck(nn.Module):
    """Mean and log-variance heads; starts as the identity with a small variance."""

    def __init__(self, d_model: int):
        super().__init__()
        self.mean = nn.Linear(d_model, d_model)
        self.logvar = nn.Linear(d_model, d_model)
        with torch.no_grad():
            self.mean.weight.copy_(torch.eye(d_model))
            self.mean.bias.zero_()
            self.logvar.weight.zero_()
            self.logvar.bias.fill_(INITIAL_LOGVAR)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The refined states (a sample when training, else the mean) and their KL."""
        mean = self.mean(states)
        logvar = self.logvar(states).clamp(-10.0, 10.0)
        kl = gaussian_kl(mean.float(), logvar.float(), mask)
        if not self.training:
            return mean, kl
        return mean + torch.randn_like(mean) * (0.5 * logvar).exp(), kl
