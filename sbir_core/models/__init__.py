"""Retrieval models, built by name from a ``ModelConfig``.

``MODELS`` maps a model name to a builder ``f(cfg: ModelConfig) -> SBIRModel``; ``register_model`` adds one (the
attention chapter registers its attention and fusion models this way). ``build_model(cfg)`` is what the trainer
and the command line call.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from sbir_core.config import ModelConfig
from sbir_core.models.backbones import BACKBONES, Backbone, build_backbone
from sbir_core.models.embedding import (EmbeddingNet, FlattenMLPHead, PoolHead, SBIRModel, photo_input,
                                        sketch_input, split_final_layer)

ModelBuilder = Callable[[ModelConfig], SBIRModel]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register ``builder(cfg) -> SBIRModel`` under ``name``."""
    def deco(builder: ModelBuilder) -> ModelBuilder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = builder
        return builder
    return deco


def build_model(cfg: ModelConfig) -> SBIRModel:
    """Build the model ``cfg.name`` (see ``MODELS``)."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; choose one of {sorted(MODELS)}")
    return MODELS[cfg.name](cfg)


def build_head(cfg: ModelConfig, backbone: Backbone) -> nn.Module:
    """The head ``cfg.head`` on map ``cfg.feature`` (default: the backbone's final map)."""
    feature = cfg.feature or backbone.final
    if feature not in backbone.channels:
        raise ValueError(f"backbone {cfg.backbone!r} has no map {feature!r}; it has {list(backbone.feature_names)}")
    if cfg.head == "mlp":
        shape = backbone.feature_shapes(cfg.input_size)[feature]
        return FlattenMLPHead(feature, shape, hidden=cfg.hidden_dim, out_dim=cfg.embed_dim or cfg.hidden_dim,
                              dropout=cfg.dropout)
    if cfg.head == "pool":
        return PoolHead(feature, backbone.channels[feature], pool=cfg.pool, out_dim=cfg.embed_dim)
    raise ValueError(f"unknown head {cfg.head!r}; choose 'mlp' or 'pool'")


def build_embedding_net(cfg: ModelConfig) -> EmbeddingNet:
    """Backbone + head + L2 normalisation, as ``cfg`` says."""
    backbone = build_backbone(cfg.backbone, cfg.weights)
    return EmbeddingNet(backbone, build_head(cfg, backbone))


@register_model("triplet-sn")
def triplet_sn(cfg: ModelConfig) -> SBIRModel:
    """Triplet ranking network of Sketch Me That Shoe (Yu et al., CVPR 2016): shared (or separate) embedding nets."""
    sketch = build_embedding_net(cfg)
    return SBIRModel(sketch, None if cfg.shared else build_embedding_net(cfg))


__all__ = ["BACKBONES", "MODELS", "Backbone", "EmbeddingNet", "FlattenMLPHead", "PoolHead", "SBIRModel",
           "build_backbone", "build_embedding_net", "build_head", "build_model", "photo_input", "register_model",
           "sketch_input", "split_final_layer"]

# The attention chapter's models register themselves on import (attention, fusion, attention-fusion).
from sbir_core.models import attention as _attention  # noqa: E402,F401
