"""Residual spatial attention and coarse-fine fusion (Song et al. ICCV 2017; Yu et al. IJCV 2020, Sect. 4.2-4.3).

The attention module scores every spatial position of a convolutional feature map with two 1x1 convolutions, turns
the scores into a probability map with a softmax over space (IJCV eq. 3), re-weights the map (eq. 4) and adds the input
back through a shortcut (eq. 5). Coarse-fine fusion concatenates the pooled attended map (the fine, local cue) with the
network's final-layer feature (the coarse, global cue), so the attended detail reaches the loss directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualSpatialAttention(nn.Module):
    """Soft spatial attention with a shortcut: ``f_s^att = f + alpha * f`` (IJCV eqs. 3-5).

    ``s_ij = F_att(f_ij)`` is a 1x1 conv (``C -> hidden``), ReLU, 1x1 conv (``hidden -> 1``); ``alpha = softmax(s)``
    over the ``H * W`` positions, so the mask sums to one over space. With ``residual=False`` the module returns the
    bare attended map ``alpha * f`` (eq. 4), the variant without shortcut of the DSSA ablation.
    """

    def __init__(self, in_channels: int, hidden_channels: int | None = None, residual: bool = True) -> None:
        super().__init__()
        hidden = hidden_channels or in_channels
        self.score = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, kernel_size=1),
        )
        self.residual = residual

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``f`` (B, C, H, W) to ``(attended map (B, C, H, W), attention mask alpha (B, H, W))``."""
        if f.ndim != 4:
            raise ValueError(f"ResidualSpatialAttention expects a (B, C, H, W) feature map, got shape {tuple(f.shape)}")
        scores = self.score(f)  # (B, 1, H, W)
        alpha = F.softmax(scores.flatten(1), dim=1).view_as(scores)
        attended = alpha * f
        out = f + attended if self.residual else attended
        return out, alpha.squeeze(1)


class CoarseFineFusion(nn.Module):
    """Concatenate the pooled attended map with the final-layer feature (IJCV Sect. 4.3; DSSA "shortcut").

    IJCV: the 2048-channel attended Mixed_7b map is reduced to 512 channels by a 1x1 convolution, globally average
    pooled, and concatenated with the 2048-D Mixed_7c feature: 2560-D. ``reduced_channels=None`` skips the convolution
    (the official DSSA code pools the attended map as it is). Output dimension: ``out_dim(final_dim)``.
    """

    def __init__(self, in_channels: int, reduced_channels: int | None = 512) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, reduced_channels, kernel_size=1) if reduced_channels else nn.Identity()
        self.fine_dim = reduced_channels or in_channels

    def out_dim(self, final_dim: int) -> int:
        """Dimension of the fused feature for a final-layer feature of ``final_dim``."""
        return self.fine_dim + final_dim

    def forward(self, attended: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        """``attended`` (B, C, H, W), ``final`` (B, D) -> ``concat[GAP(conv1x1(attended)), final]`` (B, fine + D)."""
        fine = self.reduce(attended).mean(dim=(2, 3))
        return torch.cat([fine, final.flatten(1)], dim=1)
