"""Residual spatial attention (IJCV eqs. 3-5) and coarse-fine fusion."""
from __future__ import annotations

import pytest
import torch

from sbir_core.models.attention import CoarseFineFusion, ResidualSpatialAttention


def _map(b: int = 2, c: int = 8, h: int = 5, w: int = 6) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0))


def test_attention_shapes_and_mask_sums_to_one_over_space():
    torch.manual_seed(0)
    att = ResidualSpatialAttention(8, hidden_channels=4)
    out, alpha = att(_map())
    assert out.shape == (2, 8, 5, 6)
    assert alpha.shape == (2, 5, 6)
    assert torch.all(alpha >= 0)
    torch.testing.assert_close(alpha.sum(dim=(1, 2)), torch.ones(2))


def test_residual_and_no_shortcut_variants():
    torch.manual_seed(0)
    f = _map()
    att = ResidualSpatialAttention(8)
    out, alpha = att(f)
    torch.testing.assert_close(out, f + alpha[:, None] * f)  # eq. 5
    att.residual = False
    bare, alpha2 = att(f)
    torch.testing.assert_close(alpha2, alpha)
    torch.testing.assert_close(bare, alpha[:, None] * f)  # eq. 4
    assert not ResidualSpatialAttention(8, residual=False).residual


def test_attention_mask_follows_the_scores():
    # With the score network fixed to pick channel 0, the mask peaks where channel 0 is largest.
    att = ResidualSpatialAttention(3, hidden_channels=1)
    with torch.no_grad():
        first, second = att.score[0], att.score[2]
        first.weight.zero_()
        first.weight[0, 0] = 10.0
        first.bias.zero_()
        second.weight.fill_(1.0)
        second.bias.zero_()
    f = torch.zeros(1, 3, 4, 4)
    f[0, 0, 2, 1] = 1.0
    _, alpha = att(f)
    assert alpha[0].argmax().item() == 2 * 4 + 1
    assert alpha[0, 2, 1].item() > 0.9


def test_attention_is_differentiable():
    att = ResidualSpatialAttention(4)
    out, _ = att(_map(c=4))
    out.square().sum().backward()
    assert all(p.grad is not None for p in att.parameters())


def test_attention_rejects_vectors():
    with pytest.raises(ValueError, match="B, C, H, W"):
        ResidualSpatialAttention(4)(torch.randn(2, 4))


def test_fusion_dimensions_ijcv_and_dssa():
    fusion = CoarseFineFusion(2048, reduced_channels=512)
    assert fusion.out_dim(2048) == 2560  # IJCV: 512 + 2048
    small = CoarseFineFusion(16, reduced_channels=4)
    fused = small(_map(c=16), torch.randn(2, 10))
    assert fused.shape == (2, 14)
    plain = CoarseFineFusion(8, reduced_channels=None)  # DSSA code: pool the attended map as it is
    f, final = _map(), torch.randn(2, 3)
    fused = plain(f, final)
    torch.testing.assert_close(fused[:, :8], f.mean(dim=(2, 3)))
    torch.testing.assert_close(fused[:, 8:], final)
