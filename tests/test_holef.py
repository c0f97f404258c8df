"""HOLEF energy (expanded vs outer-subtraction form), its regulariser and loss, and the Mahalanobis variant."""
from __future__ import annotations

import pytest
import torch

from sbir_core.losses import (
    HOLEFTripletLoss,
    MahalanobisTripletLoss,
    TripletLoss,
    holef_energy,
    holef_energy_naive,
    holef_pairwise,
    identity_regularizer,
)


def _pair(b: int = 6, k: int = 9, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, k, generator=g, dtype=dtype)
    y = torch.randn(b, k, generator=g, dtype=dtype)
    w = torch.randn(k, k, generator=g, dtype=dtype)
    return x, y, w


def test_expanded_form_equals_outer_subtraction_for_random_w():
    for seed in range(3):
        x, y, w = _pair(seed=seed)
        torch.testing.assert_close(holef_energy(x, y, w), holef_energy_naive(x, y, w), rtol=1e-10, atol=1e-10)


def test_expanded_form_by_hand_k2():
    # sum_ij W_ij (x_i - y_j)^2 written out for k = 2.
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]])
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    by_hand = 1 * (1 - 0.5) ** 2 + 2 * (1 + 1) ** 2 + 3 * (2 - 0.5) ** 2 + 4 * (2 + 1) ** 2
    assert holef_energy(x, y, w).item() == pytest.approx(by_hand)
    assert holef_energy_naive(x, y, w).item() == pytest.approx(by_hand)


def test_identity_w_is_squared_euclidean():
    x, y, _ = _pair(k=16)
    eye = torch.eye(16, dtype=x.dtype)
    torch.testing.assert_close(holef_energy(x, y, eye), (x - y).square().sum(1))
    loss = HOLEFTripletLoss(16).double()
    a, p, n = _pair(k=16, seed=1)[0], *_pair(k=16, seed=2)[:2]
    # TripletLoss computes in float32, so compare at float32 precision.
    expected = TripletLoss(margin=0.3, squared=True)(a, p, n)
    torch.testing.assert_close(loss(a, p, n), expected, rtol=1e-5, atol=1e-5, check_dtype=False)


def test_gradients_agree_with_naive_form():
    x, y, w = _pair(b=4, k=7, seed=3)
    grads = []
    for energy in (holef_energy, holef_energy_naive):
        leaves = [t.clone().requires_grad_(True) for t in (x, y, w)]
        (energy(*leaves) * torch.arange(1.0, 5.0, dtype=x.dtype)).sum().backward()
        grads.append([t.grad for t in leaves])
    for fast, naive in zip(*grads):
        torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


def test_pairwise_matches_rowwise_energy():
    x, y, w = _pair(b=5, k=8, seed=4)
    table = holef_pairwise(x, y[:3], w)
    assert table.shape == (5, 3)
    for b in range(3):
        torch.testing.assert_close(table[:, b], holef_energy(x, y[b].expand_as(x), w))


def test_float32_agreement_at_realistic_size():
    x, y, w = _pair(b=4, k=512, seed=5, dtype=torch.float32)
    x, y = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    w = torch.eye(512) + 0.01 * w
    torch.testing.assert_close(holef_energy(x, y, w), holef_energy_naive(x, y, w), rtol=1e-4, atol=1e-4)


def test_regularizer_values():
    eye = torch.eye(3)
    assert identity_regularizer(eye, 1.0, 1.0).item() == 0.0
    w = eye.clone()
    w[0, 1], w[2, 2] = 3.0, 5.0  # W - I has entries 3 and 4: L1 = 7, Frobenius = 5
    assert identity_regularizer(w, 1.0, 0.0).item() == pytest.approx(7.0)
    assert identity_regularizer(w, 0.0, 1.0).item() == pytest.approx(5.0)
    assert identity_regularizer(w, 0.1, 0.01).item() == pytest.approx(0.75)
    loss = HOLEFTripletLoss(3, l1=0.1, frobenius=0.01)
    with torch.no_grad():
        loss.weight.copy_(w)
    assert loss.regularizer().item() == pytest.approx(0.75)


def test_holef_loss_starts_at_identity_and_learns_w():
    loss = HOLEFTripletLoss(5, margin=1.0)
    assert torch.equal(loss.weight.detach(), torch.eye(5))
    assert loss.regularizer().item() == 0.0
    a, p, n = (torch.randn(8, 5) for _ in range(3))
    (loss(a, p, n) + loss.regularizer()).backward()
    assert loss.weight.grad is not None and loss.weight.grad.abs().sum() > 0


def test_hinge_is_zero_for_well_separated_triplets():
    a = torch.zeros(2, 4)
    p = torch.full((2, 4), 0.01)
    n = torch.full((2, 4), 3.0)
    assert HOLEFTripletLoss(4, margin=0.3)(a, p, n).item() == 0.0
    assert MahalanobisTripletLoss(4, margin=0.3)(a, p, n).item() == 0.0
    assert HOLEFTripletLoss(4, margin=0.3)(a, n, p).item() > 0.0


def test_mahalanobis_is_bilinear_form_of_difference():
    x, y, _ = _pair(k=6, seed=6, dtype=torch.float32)
    loss = MahalanobisTripletLoss(6)
    torch.testing.assert_close(loss.distance(x, y), (x - y).square().sum(1))  # L = I: squared Euclidean
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        loss.factor.copy_(torch.randn(6, 6, generator=g))
    m = loss.metric
    d = x - y
    torch.testing.assert_close(loss.distance(x, y), torch.einsum("bi,ij,bj->b", d, m, d), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss.pairwise(x, y).diagonal(), loss.distance(x, y), rtol=1e-4, atol=1e-4)
    assert torch.all(torch.linalg.eigvalsh(m.double()) > -1e-6)  # M = L L^T is positive semi-definite


def test_half_precision_inputs_are_promoted():
    x, y, w = _pair(k=8, seed=8, dtype=torch.float32)
    out = holef_energy(x.to(torch.bfloat16), y.to(torch.bfloat16), w)
    assert out.dtype == torch.float32


def test_bad_shapes_raise():
    x, y, w = _pair(k=4)
    with pytest.raises(ValueError, match="HOLEF"):
        holef_energy(x, y[:, :3], w)
    with pytest.raises(ValueError, match="HOLEF"):
        holef_energy(x, y, w[:3])
    with pytest.raises(ValueError, match="holef_pairwise"):
        holef_pairwise(x, y[:, :3], w)
    with pytest.raises(ValueError, match="margin"):
        HOLEFTripletLoss(4, margin=-1.0)
