"""Crops and flips of uint8 image stacks: the random training views and the 1 or 10 test views (Yu et al., CVPR 2016:
random 225 crops of 256 px images for training; 4 corner + centre crops and their mirror images for testing)."""
from __future__ import annotations

import torch


def crop_views(images: torch.Tensor, size: int, top: torch.Tensor, left: torch.Tensor,
               flip: torch.Tensor) -> torch.Tensor:
    """Per-sample crops ``images[b, top:top+size, left:left+size]``, mirrored where ``flip``; (B, S, S[, 3]) input."""
    ar = torch.arange(size)
    rows = top[:, None] + ar
    cols = torch.where(flip[:, None], left[:, None] + size - 1 - ar, left[:, None] + ar)
    b = torch.arange(images.shape[0])[:, None, None]
    return images[b, rows[:, :, None], cols[:, None, :]]


def random_views(images: torch.Tensor, size: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crops of side ``size`` (and random horizontal flips) of a uint8 batch."""
    n, side = images.shape[0], images.shape[1]
    top = torch.randint(0, side - size + 1, (n,), generator=gen)
    left = torch.randint(0, side - size + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return crop_views(images, size, top, left, flips)


def eval_views(side: int, size: int, multiview: bool) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of the centre crop, or of the 10 views: 4 corners + centre, each also mirrored."""
    c, e = (side - size) // 2, side - size
    if not multiview:
        return [(c, c, False)]
    corners = [(0, 0), (0, e), (e, 0), (e, e), (c, c)]
    return [(t, l, f) for f in (False, True) for t, l in corners]


__all__ = ["crop_views", "eval_views", "random_views"]
