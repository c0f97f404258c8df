"""Ranking losses for FG-SBIR triplets (anchor sketch, positive photo, negative photo).

Every loss here is an ``nn.Module`` with the same small interface, which the trainer relies on:

* ``loss(anchor, positive, negative) -> scalar``: the mean ranking loss of a batch of embeddings;
* ``loss.regularizer() -> scalar``: a penalty on the loss's own parameters (zero when it has none), added by the
  trainer to the loss; the loss's parameters are optimised together with the model's;
* ``loss.pairwise(queries, gallery) -> (n, m)``: the distance the loss ranks by, which evaluation uses to rank the
  gallery (so a learned distance such as HOLEF is also the one used for retrieval).
"""
from __future__ import annotations

import torch
from torch import nn


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distances between the rows of ``x`` (n, d) and ``y`` (m, d), as an (n, m) matrix.

    Computed as ``|x|² + |y|² − 2 x·y`` (clamped at 0), which is exact enough for ranking and fast; with
    ``squared=False`` the square root is taken.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"pairwise_distance needs (n, d) and (m, d) inputs, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.float(), y.float()
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2.0 * x @ y.T
    d2 = d2.clamp_min(0.0)
    return d2 if squared else d2.sqrt()


def _paired_distance(x: torch.Tensor, y: torch.Tensor, squared: bool) -> torch.Tensor:
    """Distance between matching rows of ``x`` and ``y``: (B,) values."""
    d2 = (x.float() - y.float()).pow(2).sum(1)
    # The gradient of sqrt at 0 is infinite; a tiny floor keeps identical pairs harmless.
    return d2 if squared else (d2 + 1e-12).sqrt()


class TripletLoss(nn.Module):
    """Triplet ranking loss ``mean(max(0, m + D(a, p) − D(a, n)))`` (Yu et al., CVPR 2016, Eq. 1).

    ``squared=True`` uses the squared Euclidean distance, as the official Sketch Me That Shoe code does (margin 0.3);
    ``squared=False`` the plain Euclidean distance, as ``nn.TripletMarginLoss`` in the Bhunia-group baselines
    (margin 0.2).
    """

    def __init__(self, margin: float = 0.3, squared: bool = True) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.squared = bool(squared)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        d_pos = _paired_distance(anchor, positive, self.squared)
        d_neg = _paired_distance(anchor, negative, self.squared)
        return torch.relu(self.margin + d_pos - d_neg).mean()

    def regularizer(self) -> torch.Tensor:
        """No parameters, no penalty."""
        return torch.zeros(())

    def pairwise(self, queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        """The (n, m) distances this loss ranks by."""
        return pairwise_distance(queries, gallery, squared=self.squared)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, squared={self.squared}"
