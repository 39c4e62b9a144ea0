"""Contrastive text-image alignment over a batch of posts: post i's text and image are the
positive pair, the other posts' images (and texts) its negatives.

MMIB's alignment regularizer is InfoNCE: log(N) minus it lower-bounds the mutual information
of the two representations. CAG's is the same loss with a temperature per post that shrinks
with the post's text-image consistency, so consistent posts are pulled together harder and
posts whose image is unrelated barely at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarities(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every text with every image: (N, N), the diagonal the pairs."""
    return F.normalize(text.float(), dim=-1) @ F.normalize(image.float(), dim=-1).T


def info_nce(text: torch.Tensor, image: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE (text->image and image->text) at one temperature."""
    sims = similarities(text, image)
    return _symmetric_nce(sims, sims.new_full((len(sims),), temperature))


def consistency_temperatures(consistency: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """tau_i = temperature * (1 - alpha * c_i): c_i = 1 gives the smallest, c_i = -1 the largest."""
    return temperature * (1.0 - alpha * consistency)


def consistency_adaptive_nce(text: torch.Tensor, image: torch.Tensor, temperature: float,
                             alpha: float) -> torch.Tensor:
    """CAG's loss: InfoNCE with post i's logits divided by tau_i, from its consistency c_i (the
    cosine of its own text and image, a weight the loss does not optimise: detached)."""
    sims = similarities(text, image)
    taus = consistency_temperatures(sims.diagonal().detach(), temperature, alpha)
    return _symmetric_nce(sims, taus)


def _symmetric_nce(sims: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Mean of the text->image and image->text cross entropies, row i at temperature taus[i]."""
    targets = torch.arange(len(sims), device=sims.device)
    return (F.cross_entropy(sims / taus[:, None], targets) + F.cross_entropy(sims.T / taus[:, None], targets)) / 2
