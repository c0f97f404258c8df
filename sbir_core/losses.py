"""Ranking losses for FG-SBIR triplets (anchor sketch, positive photo, negative photo).

Every loss here is an ``nn.Module`` with the same small interface, which the trainer relies on:

* ``loss(anchor, positive, negative) -> scalar``: the mean ranking loss of a batch of embeddings;
* ``loss.regularizer() -> scalar``: a penalty on the loss's own parameters (zero when it has none), added by the
  trainer to the loss; the loss's parameters are optimised together with the model's;
* ``loss.pairwise(queries, gallery) -> (n, m)``: the distance the loss ranks by, which evaluation uses to rank the
  gallery (so a learned distance such as HOLEF is also the one used for retrieval).

``LOSSES`` maps ``LossConfig.name`` to a builder and ``build_loss(cfg, embed_dim)`` builds one, as ``MODELS`` and
``build_model`` do for networks.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from sbir_core.config import ConfigError, LossConfig


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


# --- Higher-order energy (HOLEF) and a Mahalanobis metric (Song et al. ICCV 2017) ------------------------------------
def _full_precision(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Half-precision inputs (AMP) are promoted to float32: the expanded energy subtracts large terms."""
    return tuple(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors)


def _check_pair(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> None:
    if x.ndim != 2 or x.shape != y.shape or weight.shape != (x.shape[1], x.shape[1]):
        raise ValueError(f"HOLEF needs x, y of shape (B, k) and W of shape (k, k), got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}, {tuple(weight.shape)}")


def holef_energy(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Row-wise HOLEF energy ``D_H(x, y) = sum_ij W_ij (x_i - y_j)^2`` for ``x, y`` of shape (B, k).

    The outer subtraction is never built. Expanding the square,
    ``sum_ij W_ij (x_i - y_j)^2 = sum_i x_i^2 r_i + sum_j y_j^2 c_j - 2 x^T W y`` with row sums ``r = W 1`` and column
    sums ``c = W^T 1``, so a batch costs one (B, k) x (k, k) product and O(B k) memory instead of O(B k^2).
    With ``W = I`` it is the squared Euclidean distance.
    """
    _check_pair(x, y, weight)
    x, y, weight = _full_precision(x, y, weight)
    rows, cols = weight.sum(dim=1), weight.sum(dim=0)
    return (x * x) @ rows + (y * y) @ cols - 2.0 * ((x @ weight) * y).sum(dim=1)


def holef_energy_naive(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same energy through the (B, k, k) outer subtraction ``x ⊖ y``, as the paper writes it: the reference for tests."""
    _check_pair(x, y, weight)
    outer = x[:, :, None] - y[:, None, :]
    return (outer.square() * weight).sum(dim=(1, 2))


def holef_pairwise(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """All-pairs HOLEF energy, (n, k) x (m, k) -> (n, m): ``D[a, b] = D_H(x_a, y_b)``, for ranking a gallery."""
    if x.ndim != 2 or y.ndim != 2 or not x.shape[1] == y.shape[1] == weight.shape[0] == weight.shape[1]:
        raise ValueError(f"holef_pairwise needs (n, k), (m, k) and (k, k), got {tuple(x.shape)}, {tuple(y.shape)}, "
                         f"{tuple(weight.shape)}")
    x, y, weight = _full_precision(x, y, weight)
    rows, cols = weight.sum(dim=1), weight.sum(dim=0)
    return ((x * x) @ rows)[:, None] + ((y * y) @ cols)[None, :] - 2.0 * (x @ weight) @ y.T


def identity_regularizer(matrix: torch.Tensor, l1: float, frobenius: float) -> torch.Tensor:
    """``l1 * ||A - I||_1 + frobenius * ||A - I||_F``: keeps a learned metric near the identity (DSSA, HOLEF loss)."""
    delta = matrix - torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    return l1 * delta.abs().sum() + frobenius * torch.linalg.matrix_norm(delta)


class HOLEFTripletLoss(nn.Module):
    """Triplet loss on the higher-order energy: ``max(0, margin + D_H(s, p+) - D_H(s, p-))`` (DSSA, HOLEF loss).

    ``W`` (k x k) is learnable and starts at the identity, where the loss is the squared-Euclidean triplet loss.
    ``regularizer()`` is ``lambda_1 ||W - I||_1 + lambda_F ||W - I||_F``; the defaults 5e-4 follow the only public
    PyTorch HOLEF (avalonstrel/SBIR), since the paper gives no value. Note that ``D_H`` is not a metric: nothing keeps
    ``W`` non-negative, so an energy can go below zero once ``W`` has moved away from ``I``.
    """

    def __init__(self, dim: int, margin: float = 0.3, l1: float = 5e-4, frobenius: float = 5e-4) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.weight = nn.Parameter(torch.eye(dim))
        self.margin, self.l1, self.frobenius = margin, l1, frobenius

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``D_H`` between matching rows: (B,) energies."""
        return holef_energy(x, y, self.weight)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (n, m) energies this loss ranks a gallery by."""
        return holef_pairwise(x, y, self.weight)

    def regularizer(self) -> torch.Tensor:
        """``lambda_1 ||W - I||_1 + lambda_F ||W - I||_F``, added to the loss by the trainer."""
        return identity_regularizer(self.weight, self.l1, self.frobenius)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        gap = self.distance(anchor, positive) - self.distance(anchor, negative)
        return torch.relu(self.margin + gap).mean()

    def extra_repr(self) -> str:
        return f"dim={self.weight.shape[0]}, margin={self.margin}, l1={self.l1}, frobenius={self.frobenius}"


class MahalanobisTripletLoss(nn.Module):
    """Triplet loss on a learned Mahalanobis distance ``(x - y)^T M (x - y)``, the alternative DSSA compares HOLEF with.

    ``M = L L^T`` with a learnable k x k ``L`` started at the identity, so ``M`` stays positive semi-definite and the
    energy is ``||L^T (x - y)||^2``. Unlike HOLEF it compares only same-index elements of ``x`` and ``y`` (the
    difference is taken first). ``regularizer()`` pulls ``L`` (not ``M``, which would cost a k^3 product per step)
    towards ``I`` with the same L1 + Frobenius form and weights as HOLEF.
    """

    def __init__(self, dim: int, margin: float = 0.3, l1: float = 5e-4, frobenius: float = 5e-4) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.factor = nn.Parameter(torch.eye(dim))
        self.margin, self.l1, self.frobenius = margin, l1, frobenius

    @property
    def metric(self) -> torch.Tensor:
        """The matrix ``M = L L^T``."""
        return self.factor @ self.factor.T

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``D_M`` between matching rows: (B,) values."""
        x, y = _full_precision(x, y)
        return _paired_distance(x @ self.factor, y @ self.factor, squared=True)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (n, m) distances this loss ranks a gallery by."""
        x, y = _full_precision(x, y)
        return pairwise_distance(x @ self.factor, y @ self.factor, squared=True)

    def regularizer(self) -> torch.Tensor:
        """``lambda_1 ||L - I||_1 + lambda_F ||L - I||_F``, added to the loss by the trainer."""
        return identity_regularizer(self.factor, self.l1, self.frobenius)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        gap = self.distance(anchor, positive) - self.distance(anchor, negative)
        return torch.relu(self.margin + gap).mean()

    def extra_repr(self) -> str:
        return f"dim={self.factor.shape[0]}, margin={self.margin}, l1={self.l1}, frobenius={self.frobenius}"


# --- the loss registry ------------------------------------------------------------------------------------------------
LossBuilder = Callable[[LossConfig, int], nn.Module]
LOSSES: dict[str, LossBuilder] = {}


def register_loss(name: str) -> Callable[[LossBuilder], LossBuilder]:
    """Decorator: register ``builder(cfg, embed_dim) -> loss module`` under ``name`` (the counterpart of
    ``sbir_core.models.register_model``)."""
    def deco(builder: LossBuilder) -> LossBuilder:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        LOSSES[name] = builder
        return builder
    return deco


def build_loss(cfg: LossConfig, embed_dim: int) -> nn.Module:
    """The ranking loss ``cfg.name`` for embeddings of size ``embed_dim`` (see ``LOSSES``)."""
    if cfg.name not in LOSSES:
        raise ConfigError("loss.name", f"unknown loss {cfg.name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[cfg.name](cfg, embed_dim)


def _learned_metric_options(cfg: LossConfig) -> dict[str, float]:
    unknown = sorted(set(cfg.options) - {"l1", "frobenius"})
    if unknown:
        raise ConfigError("loss.options", f"unknown options {unknown} for loss {cfg.name!r}; known: l1, frobenius")
    return {k: float(v) for k, v in cfg.options.items()}


@register_loss("triplet")
def _triplet(cfg: LossConfig, embed_dim: int) -> nn.Module:
    if cfg.options:
        raise ConfigError("loss.options", f"the triplet loss takes no options, got {sorted(cfg.options)}")
    return TripletLoss(cfg.margin, squared=cfg.squared)


@register_loss("holef")
def _holef(cfg: LossConfig, embed_dim: int) -> nn.Module:
    return HOLEFTripletLoss(embed_dim, margin=cfg.margin, **_learned_metric_options(cfg))


@register_loss("mahalanobis")
def _mahalanobis(cfg: LossConfig, embed_dim: int) -> nn.Module:
    return MahalanobisTripletLoss(embed_dim, margin=cfg.margin, **_learned_metric_options(cfg))
