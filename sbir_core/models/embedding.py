"""Embedding networks: backbone → head → L2-normalised vector, and the two-branch (sketch, photo) retrieval model.

Sketch Me That Shoe (Yu et al., CVPR 2016) uses three branches (anchor sketch, positive photo, negative photo) that
share ALL weights; ``SBIRModel`` with ``photo=None`` is that Siamese set-up (the two photo branches are always one
network), and with a separate ``photo`` network it is the heterogeneous variant.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sbir_core.errors import ConfigError
from sbir_core.models.backbones import Backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] → ImageNet-normalised network input."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def sketch_input(rasters: torch.Tensor) -> torch.Tensor:
    """Sketch rasters (B, H, W), ink = 1 on 0 (uint8 0-255 or float 0-1) → network input (B, 3, H, W).

    The ink is inverted to dark-on-white "paper" polarity and replicated to three channels (see ``backbones``).
    """
    x = rasters.float() / 255.0 if rasters.dtype == torch.uint8 else rasters.float()
    return normalize_images((1.0 - x).unsqueeze(1).expand(-1, 3, -1, -1))


def photo_input(photos: torch.Tensor) -> torch.Tensor:
    """Photos (B, H, W, 3) uint8 RGB → network input (B, 3, H, W)."""
    return normalize_images(photos.permute(0, 3, 1, 2).float() / 255.0)


class PoolHead(nn.Module):
    """Global max (or average) pooling of one named map, then an optional linear layer.

    Max pooling without a linear layer is the Bhunia-group triplet baseline (InceptionV3 Mixed_7c → 2048-D).
    """

    def __init__(self, feature: str, in_channels: int, pool: str = "max", out_dim: int | None = None) -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        self.feature, self.pool = feature, pool
        self.fc = nn.Linear(in_channels, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or in_channels

    def forward(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        f = maps[self.feature]
        v = f.amax(dim=(2, 3)) if self.pool == "max" else f.mean(dim=(2, 3))
        return self.fc(v)


class FlattenMLPHead(nn.Module):
    """Flatten one named map, then fc6 (``hidden``, ReLU) and fc7 (``out_dim``): Sketch Me That Shoe's 512 → 256.

    Flattening keeps the spatial layout, which suits pose-aligned sketch-photo pairs.
    """

    def __init__(self, feature: str, in_shape: tuple[int, int, int], hidden: int = 512, out_dim: int = 256,
                 dropout: float = 0.0) -> None:
        super().__init__()
        c, h, w = in_shape
        self.feature, self.out_dim = feature, out_dim
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mlp(maps[self.feature])


class EmbeddingNet(nn.Module):
    """``backbone`` → ``head`` (maps → (B, D) vector) → L2 normalisation (Sketch Me That Shoe's "L2 Normalize").

    ``head`` is any module taking the backbone's dict of named maps; ``None`` means global max pooling of the final
    map. ``head.out_dim`` is the embedding size.
    """

    def __init__(self, backbone: Backbone, head: nn.Module | None = None, normalize: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else PoolHead(backbone.final, backbone.channels[backbone.final])
        self.normalize = normalize

    @property
    def out_dim(self) -> int:
        return int(self.head.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.head(self.backbone(x))
        return F.normalize(v.float(), dim=1) if self.normalize else v


class SBIRModel(nn.Module):
    """A sketch branch and a photo branch; ``photo=None`` shares every weight between them (Siamese)."""

    def __init__(self, sketch: nn.Module, photo: nn.Module | None = None) -> None:
        super().__init__()
        self.sketch = sketch
        self.photo = photo  # None: the sketch network embeds photos too

    @property
    def shared(self) -> bool:
        return self.photo is None

    @property
    def embed_dim(self) -> int:
        return int(self.sketch.out_dim)

    def embed_sketch(self, x: torch.Tensor) -> torch.Tensor:
        """Network-ready sketch batch (``sketch_input``) → (B, D) embeddings."""
        return self.sketch(x)

    def embed_photo(self, x: torch.Tensor) -> torch.Tensor:
        """Network-ready photo batch (``photo_input``) → (B, D) embeddings."""
        return (self.sketch if self.photo is None else self.photo)(x)

    def embed(self, sketches: torch.Tensor, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed a training batch of sketches and photos. A shared network sees both in ONE pass, so that batch-norm
        layers normalise training batches with the same sketch-and-photo statistics their running averages (used at
        test time) accumulate; alternating sketch-only and photo-only passes would make the two disagree."""
        if self.photo is None:
            out = self.sketch(torch.cat([sketches, photos]))
            return out[: len(sketches)], out[len(sketches):]
        return self.sketch(sketches), self.photo(photos)


def split_final_layer(net: EmbeddingNet) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """``(features_fn, final_linear)`` with ``final_linear(features_fn(x)) == net.head(net.backbone(x))``.

    Works for :class:`PoolHead` with a linear layer (its ``fc``; the book preset) and :class:`FlattenMLPHead` (the last
    module of its MLP; the real presets). ``net.normalize`` L2-normalises the output of the final layer; the on-the-fly
    policy (``sbir_core.rl``) and the meta-learned head (``sbir_core.meta``) replace or adapt ``final_linear``.
    """
    head = net.head
    if isinstance(head, PoolHead) and isinstance(head.fc, nn.Linear):
        def features(x: torch.Tensor) -> torch.Tensor:
            f = net.backbone(x)[head.feature]
            return f.amax(dim=(2, 3)) if head.pool == "max" else f.mean(dim=(2, 3))
        return features, head.fc
    if isinstance(head, FlattenMLPHead) and isinstance(head.mlp[-1], nn.Linear):
        return lambda x: head.mlp[:-1](net.backbone(x)[head.feature]), head.mlp[-1]
    if isinstance(head, PoolHead):
        raise ConfigError("model.embed_dim", "the pooling head has no final Linear layer (embed_dim=None), so there "
                          "is no final layer to adapt or replace")
    raise ConfigError("model.head", f"a final layer to adapt or replace needs a PoolHead with a linear layer or a "
                      f"FlattenMLPHead; this "
                      f"model's head is a {type(head).__name__}")
