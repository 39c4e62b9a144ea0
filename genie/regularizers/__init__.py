"""Regularizers from the literature as one optional module of the model (`regularizers:` in
the config): MMIB's bottleneck and InfoNCE alignment, CAG's consistency-adaptive alignment.

genie's encoder is single-stream: it fuses text and image by attending over [text; regions].
So the unimodal representations the terms act on are its inputs, the token embeddings and the
projected regions, as MMIB and CAG act on their text and image encoders' outputs before fusion.
"""

from __future__ import annotations

import torch
from torch import nn

from genie.config import RegularizersConfig
from genie.options import Alignment
from genie.regularizers.bottleneck import VariationalBottleneck, gaussian_kl
from genie.regularizers.contrastive import consistency_adaptive_nce, info_nce


class Regularizers(nn.Module):
    """Refines the text and region inputs of the encoder, and returns the (unweighted) terms."""

    def __init__(self, d_model: int, cfg: RegularizersConfig):
        super().__init__()
        self.cfg = cfg
        self.text_bottleneck = VariationalBottleneck(d_model) if cfg.bottleneck else None
        self.region_bottleneck = VariationalBottleneck(d_model) if cfg.bottleneck else None
        self.text_projection = self.region_projection = None
        if cfg.alignment != Alignment.NONE:
            self.text_projection = nn.Linear(d_model, cfg.projection_dim)
            self.region_projection = nn.Linear(d_model, cfg.projection_dim)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, regions: torch.Tensor,
                region_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """text (B, L, d), regions (B, K, d), bool masks: the refined text and regions, and terms."""
        terms = {}
        if self.text_bottleneck is not None:
            text, text_kl = self.text_bottleneck(text, text_mask)
            regions, region_kl = self.region_bottleneck(regions, region_mask)
            terms["kl_loss"] = text_kl + region_kl
        if self.text_projection is not None:
            pooled_text = self.text_projection(masked_mean(text, text_mask))
            pooled_regions = self.region_projection(masked_mean(regions, region_mask))
            if self.cfg.alignment == "cag":
                terms["alignment_loss"] = consistency_adaptive_nce(pooled_text, pooled_regions, self.cfg.temperature,
                                                                   self.cfg.cag_alpha)
            else:
                terms["alignment_loss"] = info_nce(pooled_text, pooled_regions, self.cfg.temperature)
        return text, regions, terms

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the terms add to the training loss."""
        return (self.cfg.beta * terms.get("kl_loss", 0.0)
                + self.cfg.alignment_weight * terms.get("alignment_loss", 0.0))


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, d) -> (B, d), the mean over masked-in positions (0 for an empty row)."""
    weights = mask.to(states.dtype)[..., None]
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


__all__ = ["Regularizers", "VariationalBottleneck", "consistency_adaptive_nce", "gaussian_kl", "info_nce",
           "masked_mean"]
