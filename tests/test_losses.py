"""Triplet loss and pairwise distances against hand-computed values."""
from __future__ import annotations

import pytest
import torch

from sbir_core.losses import TripletLoss, pairwise_distance


def test_pairwise_distance_matches_hand_values():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, 0.0], [0.0, 4.0], [6.0, 8.0]])
    expected = torch.tensor([[0.0, 4.0, 10.0], [5.0, 3.0, 5.0]])
    torch.testing.assert_close(pairwise_distance(x, y), expected)
    torch.testing.assert_close(pairwise_distance(x, y, squared=True), expected**2)


def test_pairwise_distance_agrees_with_cdist():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)
    torch.testing.assert_close(pairwise_distance(x, y), torch.cdist(x, y), atol=1e-5, rtol=1e-5)


def test_pairwise_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="pairwise_distance"):
        pairwise_distance(torch.zeros(3, 2), torch.zeros(3, 4))


def test_triplet_loss_hand_computed_squared():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [0.1, 0.0]])
    n = torch.tensor([[0.0, 1.2], [3.0, 0.0]])
    # squared: d+ = 1, 0.01; d- = 1.44, 9  -> hinge(0.3 + 1 - 1.44) = 0, hinge(0.3 + 0.01 - 9) = 0
    assert TripletLoss(0.3, squared=True)(a, p, n).item() == pytest.approx(0.0)
    # margin 1: hinge(1 + 1 - 1.44) = 0.56, 0 -> mean 0.28
    assert TripletLoss(1.0, squared=True)(a, p, n).item() == pytest.approx(0.28)
    # Euclidean, margin 0.3: hinge(0.3 + 1 - 1.2) = 0.1, hinge(0.3 + 0.1 - 3) = 0 -> 0.05
    assert TripletLoss(0.3, squared=False)(a, p, n).item() == pytest.approx(0.05)


def test_triplet_loss_matches_torch_triplet_margin_loss():
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(16, 8, generator=g) for _ in range(3))
    ours = TripletLoss(0.2, squared=False)(a, p, n)
    ref = torch.nn.TripletMarginLoss(margin=0.2, eps=0.0)(a, p, n)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_triplet_loss_gradient_is_finite_for_identical_pairs():
    a = torch.ones(2, 3, requires_grad=True)
    loss = TripletLoss(0.3, squared=False)(a, a.detach().clone(), torch.zeros(2, 3))
    loss.backward()
    assert torch.isfinite(a.grad).all()


def test_triplet_loss_interface_regularizer_and_pairwise():
    loss = TripletLoss(0.3, squared=True)
    assert loss.regularizer().item() == 0.0
    q, gal = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    torch.testing.assert_close(loss.pairwise(q, gal), torch.tensor([[4.0, 1.0]]))
    with pytest.raises(ValueError):
        TripletLoss(-1.0)
