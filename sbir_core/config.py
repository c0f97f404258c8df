"""Run configuration as plain dataclasses, and named presets for each paper set-up.

A ``RunConfig`` holds everything a training run needs: the model, the loss, the optimisation and the evaluation.
Presets (``preset(name)``) give the papers' settings for full runs and a small CPU profile for the book;
``override(cfg, ["train.epochs=5", "model.backbone=sketchanet"])`` changes single fields.

Where the figures come from (the official code where it exists, else the paper):

* ``triplet-sn-paper``: Sketch Me That Shoe, official Caffe/TF code (DeepSBIR, Deep_SBIR_tf): Sketch-a-Net on 225 px
  crops of 256 px images, fc6 512 / fc7 256, L2 norm, shared branches, squared-Euclidean triplet loss with margin
  0.3, SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 128 triplets, random crop + flip, 10-view testing.
  The code runs 20,000-25,000 iterations, 8,000-10,000 epochs of the 304 Shoe-V1 sketches; 500 epochs here.
* ``baseline-fgsbir-paper``: AyanKumarBhunia/Baseline_FGSBIR: InceptionV3 to Mixed_7c, global max pooling, 2048-D,
  L2 norm, shared branches, ``nn.TripletMarginLoss`` (Euclidean, margin 0.2), Adam lr 1e-4, batch 16, 299 px,
  200 epochs, single-view testing.
* ``book``: not from a paper. The compact CNN at 64 px (global max pooling + a 128-D linear layer) on the synthetic
  benchmark with the paper's loss (squared-Euclidean triplet, margin 0.3), Adam 1e-3 with cosine decay, and
  in-batch negatives (each anchor ranks its photo above the other photos of the batch: 32 x 31 triplets from 64
  images per step instead of 32 triplets from 96). It uses every CPU core torch sees (``num_threads=None``):
  another thread count or CPU takes another float path and trains another model, which the chapters' records allow
  for with their tolerances (README, "Testing contract").
* ``real-cpu``: Triplet-SN (Sketch-a-Net, fc6 512 / fc7 256, the paper's loss and 10-view testing) at 112 px crops
  of 128 px images, Adam 3e-4 and in-batch negatives, for from-scratch runs of a few minutes on a 2-core CPU.

``validate_config(cfg)`` checks a configuration once, before anything is built or trained, and raises
``ConfigError`` naming the bad key.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sbir_core.errors import ConfigError


@dataclass
class ModelConfig:
    """What network to build; ``name`` is a key of ``sbir_core.models.MODELS``."""

    name: str = "triplet-sn"
    backbone: str = "compact"  # sketchanet | compact | inception_v3 | vgg16
    weights: str | None = None  # torchvision weights name ("DEFAULT", "IMAGENET1K_V1") or None (from scratch)
    init: str | None = None  # a weights file (a run's best.pt, a run-cache weights.pt) to start from: pretraining
    input_size: int = 64  # the network's input side (crop size)
    shared: bool = True  # one network for sketches and photos (Siamese), else two
    head: str = "mlp"  # "mlp": flatten + fc6/fc7 (Sketch Me That Shoe); "pool": global pooling (+ linear)
    feature: str | None = None  # the backbone map the head reads; None: the final map
    pool: str = "max"  # for head="pool"
    hidden_dim: int = 512  # fc6
    embed_dim: int | None = 256  # fc7; for head="pool", None keeps the pooled channels
    dropout: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # extra settings read by registered model builders


@dataclass
class LossConfig:
    name: str = "triplet"  # triplet | holef | mahalanobis
    margin: float = 0.3
    squared: bool = True  # squared-Euclidean distance (official Sketch Me That Shoe code) or Euclidean
    options: dict[str, Any] = field(default_factory=dict)  # e.g. regulariser weights of a learned metric


@dataclass
class TrainConfig:
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "constant"  # learning rate per epoch: constant (the papers) or cosine (decays to 0)
    batch_size: int = 32  # anchors (sketches) per step
    negatives: str = "random"  # "random": one uniformly drawn other photo per anchor (the Bhunia-group code);
    #   "in-batch": every other photo of the batch is a negative of each anchor (B(B-1) triplets from 2B images);
    #   "annotated": a human-annotated (more similar, less similar) pair (QMUL-V1; official Sketch Me That Shoe code)
    hard_ratio: float = 0.75  # "annotated": share of annotated negatives; the rest are uniform "easy" ones
    epochs: int = 10  # one epoch = every training sketch once as an anchor
    data_size: int = 72  # side the split is rendered at; random crops of model.input_size are taken from it
    flip: bool = True  # random horizontal flips, drawn independently for anchor, positive and negative
    val_fraction: float = 0.1  # share of the training PHOTOS (with their sketches) held out for model selection
    eval_every: int = 1  # epochs between validation passes
    amp: bool = True  # mixed precision, used only on CUDA
    num_threads: int | None = None  # torch CPU threads; None leaves the default


@dataclass
class EvalConfig:
    multiview: bool = False  # 4 corner + centre crops and their flips, distances averaged (Sketch Me That Shoe)
    batch_size: int = 64


@dataclass
class RunConfig:
    preset: str = "book"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        sections = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig, "eval": EvalConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in d.items():
            if key not in known:
                raise ConfigError(key, "unknown configuration section")
            if key in sections:
                fields = {f.name for f in dataclasses.fields(sections[key])}
                if not isinstance(value, dict) or set(value) - fields:
                    bad = sorted(set(value) - fields) if isinstance(value, dict) else value
                    raise ConfigError(key, f"unknown fields {bad}")
        return cls(**{k: (sections[k](**v) if k in sections else v) for k, v in d.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _book() -> RunConfig:
    return RunConfig(
        preset="book",
        model=ModelConfig(backbone="compact", input_size=64, head="pool", pool="max", embed_dim=128),
        loss=LossConfig(margin=0.3, squared=True),
        train=TrainConfig(optimizer="adam", lr=1e-3, schedule="cosine", batch_size=32, epochs=20, data_size=72,
                          negatives="in-batch"),
    )


def _triplet_sn_paper() -> RunConfig:
    return RunConfig(
        preset="triplet-sn-paper",
        model=ModelConfig(backbone="sketchanet", input_size=225, head="mlp", hidden_dim=512, embed_dim=256),
        loss=LossConfig(margin=0.3, squared=True),
        train=TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=500,
                          data_size=256, eval_every=10),
        eval=EvalConfig(multiview=True),
    )


def _baseline_fgsbir_paper() -> RunConfig:
    return RunConfig(
        preset="baseline-fgsbir-paper",
        model=ModelConfig(backbone="inception_v3", weights="DEFAULT", input_size=299, head="pool", pool="max",
                          embed_dim=None),
        loss=LossConfig(margin=0.2, squared=False),
        train=TrainConfig(optimizer="adam", lr=1e-4, batch_size=16, epochs=200, data_size=299, flip=True),
    )


def _real_cpu() -> RunConfig:
    return RunConfig(
        preset="real-cpu",
        model=ModelConfig(backbone="sketchanet", input_size=112, head="mlp", hidden_dim=512, embed_dim=256),
        loss=LossConfig(margin=0.3, squared=True),
        train=TrainConfig(optimizer="adam", lr=3e-4, batch_size=32, epochs=60, data_size=128, eval_every=2,
                          negatives="in-batch"),
        eval=EvalConfig(multiview=True),
    )


PRESETS = {"book": _book, "triplet-sn-paper": _triplet_sn_paper, "baseline-fgsbir-paper": _baseline_fgsbir_paper,
           "real-cpu": _real_cpu}


def preset(name: str) -> RunConfig:
    """A fresh ``RunConfig`` for a named preset."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


_CHOICES = {"train.optimizer": ("adam", "sgd"), "train.schedule": ("constant", "cosine"),
            "train.negatives": ("random", "in-batch", "annotated"), "model.head": ("mlp", "pool"),
            "model.pool": ("max", "avg")}
_POSITIVE = ("train.lr", "train.batch_size", "train.epochs", "train.data_size", "train.eval_every",
             "model.input_size", "model.hidden_dim", "eval.batch_size")


def validate_config(cfg: RunConfig) -> RunConfig:
    """Check ``cfg`` before training; raise ``ConfigError`` naming the first bad key. Returns ``cfg``."""
    from sbir_core.losses import LOSSES
    from sbir_core.models import BACKBONES, MODELS

    def get(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    for key, choices in {**_CHOICES, "model.name": tuple(MODELS), "model.backbone": tuple(BACKBONES),
                         "loss.name": tuple(LOSSES)}.items():
        if get(key) not in choices:
            raise ConfigError(key, f"{get(key)!r} is not one of {', '.join(sorted(choices))}")
    for key in _POSITIVE:
        if not get(key) > 0:
            raise ConfigError(key, f"must be positive, got {get(key)}")
    t = cfg.train
    if t.batch_size < 2:
        raise ConfigError("train.batch_size", f"must be at least 2 (batch norm, negatives), got {t.batch_size}")
    if t.data_size < cfg.model.input_size:
        raise ConfigError("train.data_size", f"{t.data_size} is smaller than model.input_size "
                          f"({cfg.model.input_size}): crops of the input size are taken from data of this size")
    if not 0 <= t.val_fraction < 1:
        raise ConfigError("train.val_fraction", f"must lie in [0, 1), got {t.val_fraction}")
    if not 0 <= t.hard_ratio <= 1:
        raise ConfigError("train.hard_ratio", f"must lie in [0, 1], got {t.hard_ratio}")
    for key, value in (("train.weight_decay", t.weight_decay), ("train.momentum", t.momentum),
                       ("loss.margin", cfg.loss.margin), ("model.dropout", cfg.model.dropout)):
        if value < 0:
            raise ConfigError(key, f"must not be negative, got {value}")
    if t.num_threads is not None and t.num_threads < 1:
        raise ConfigError("train.num_threads", f"must be at least 1 or None, got {t.num_threads}")
    if cfg.model.init is not None and not Path(cfg.model.init).is_file():
        raise ConfigError("model.init", f"no weights file {cfg.model.init}")
    if cfg.model.embed_dim is not None and cfg.model.embed_dim < 1:
        raise ConfigError("model.embed_dim", f"must be positive or None, got {cfg.model.embed_dim}")
    return cfg


def _parse(value: str, annotation: Any) -> Any:
    """Parse a command-line value into the type a dataclass field declares."""
    hint = str(annotation)
    if value.lower() in ("none", "null") and "None" in hint:
        return None
    if hint.startswith("bool"):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    for kind in (int, float):
        if hint.startswith(kind.__name__):
            return kind(value)
    if hint.startswith("dict"):
        return json.loads(value)
    if hint.startswith("list"):  # a JSON list, or comma-separated words: held_out=mug,teapot
        items = json.loads(value) if value.startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(items, list):
            raise ValueError(f"expected a list, got {value!r}")
        return [str(v) for v in items]
    return value


def split_assignment(item: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``, keys stripped; ``ConfigError`` naming ``item`` without an ``=``."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(item, "an override must have the form key=value")
    return key.strip(), value


def override_fields(cfg: Any, assignments: Sequence[str], kind: str) -> Any:
    """``field=value`` assignments (``--set``) applied to a copy of the flat dataclass ``cfg`` (the RL and
    meta-learning settings); ``kind`` names it in errors."""
    cfg = dataclasses.replace(cfg)
    for item in assignments:
        key, value = split_assignment(item)
        set_field(cfg, key, value, key, kind)
    return cfg


def override(cfg: RunConfig, assignments: list[str]) -> RunConfig:
    """Apply ``section.field=value`` (or ``seed=3``) assignments to a copy of ``cfg``."""
    cfg = RunConfig.from_dict(cfg.to_dict())
    for item in assignments:
        key, value = split_assignment(item)
        *path, name = key.split(".")
        target: Any = cfg
        for part in path:
            target = getattr(target, part, None)
            if not dataclasses.is_dataclass(target):
                raise ConfigError(key, "unknown configuration section")
        set_field(target, name, value, key)
    return cfg


def set_field(target: Any, name: str, value: str, key: str, kind: str = "configuration") -> None:
    """Set the dataclass field ``name`` of ``target`` from the command-line text ``value``, parsed into the field's
    declared type; a bad name or value raises ``ConfigError`` naming ``key`` (``kind`` says which configuration)."""
    fields = {f.name for f in dataclasses.fields(target)}
    if name not in fields:
        raise ConfigError(key, f"unknown {kind} field; known: {sorted(fields)}")
    try:
        setattr(target, name, _parse(value.strip(), _type_name(typing.get_type_hints(type(target))[name])))
    except ValueError as err:
        raise ConfigError(key, f"cannot read {value.strip()!r}: {err}") from None


def _type_name(hint: Any) -> str:
    """``int | None`` → ``"int | None"``; ``bool`` → ``"bool"``."""
    return hint.__name__ if isinstance(hint, type) else str(hint)
