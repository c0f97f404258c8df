"""Convolutional backbones that return NAMED feature maps.

A backbone maps a (B, 3, S, S) image batch to an ordered dict ``{name: (B, C, H, W) map}``; the last entry is the
final map. Heads (``sbir_core.models.embedding``) and attention modules pick the maps they need by name, e.g.
``"Mixed_7b"`` and ``"Mixed_7c"`` of InceptionV3 for the IJCV 2020 coarse-fine fusion, or ``"pool5"`` of Sketch-a-Net
for DSSA.

Input convention (all backbones): three channels, normalised with the ImageNet mean and std
(``sbir_core.models.embedding.normalize_images``). Sketches are shown to the network in "paper" polarity, dark ink on
white, replicated to three channels, so that one Siamese network sees sketches and photos (product shots on white) in
the same way; this is also the polarity of the official Sketch Me That Shoe code (black lines on white, mean subtracted).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

FeatureMaps = dict[str, torch.Tensor]  # ordered: the last entry is the final map


class Backbone(nn.Module):
    """Base class: ``forward(x) -> {name: map}`` (ordered); ``channels[name]`` gives each map's channel count."""

    #: the names of the maps ``forward`` returns, in order (the last is the final map)
    feature_names: tuple[str, ...] = ()
    #: channels of each named map
    channels: dict[str, int] = {}
    #: the input side the architecture was designed for
    default_input_size: int = 224

    @property
    def final(self) -> str:
        """Name of the final feature map."""
        return self.feature_names[-1]

    @torch.no_grad()
    def feature_shapes(self, input_size: int) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) of every named map for a square input of side ``input_size`` (one dummy forward pass)."""
        was_training = self.training
        self.eval()
        try:
            param = next(self.parameters())
            maps = self(torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype))
        finally:
            self.train(was_training)
        return {name: tuple(m.shape[1:]) for name, m in maps.items()}


class _Sequential(Backbone):
    """A backbone made of named stages run one after the other; every stage's output is a named map."""

    def __init__(self, stages: "OrderedDict[str, nn.Module]", channels: dict[str, int]) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self.feature_names = tuple(stages)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> FeatureMaps:
        out: FeatureMaps = {}
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        return out


class SketchANet(_Sequential):
    """Sketch-a-Net trunk (Yu et al., IJCV 2017), as in Sketch Me That Shoe (Yu et al., CVPR 2016, Fig. 3).

    conv1 64@15x15 stride 3 → maxpool 3/2 → conv2 128@5x5 → maxpool 3/2 → conv3-5 256@3x3 pad 1 → maxpool 3/2.
    A 225 px input gives a 7x7x256 ``pool5`` map; the fc6 (512) and fc7 (256) layers are the embedding head
    (``FlattenMLPHead``). The paper's trunk is single-channel (grey sketches and photo edge maps); here it takes three
    channels so that RGB photos go through the same weights. Maps: ``conv1``, ``conv2`` (after ReLU and max-pooling),
    ``conv3``, ``conv4``, ``conv5`` (after ReLU), ``pool5``.
    """

    default_input_size = 225

    def __init__(self, in_channels: int = 3) -> None:
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        pool = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
        stages = OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(in_channels, 64, 15, stride=3), relu(), pool()),
            conv2=nn.Sequential(nn.Conv2d(64, 128, 5), relu(), pool()),
            conv3=nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), relu()),
            conv4=nn.Sequential(nn.Conv2d(256, 256, 3, padding=1), relu()),
            conv5=nn.Sequential(nn.Conv2d(256, 256, 3, padding=1), relu()),
            pool5=pool(),
        )
        super().__init__(stages, {"conv1": 64, "conv2": 128, "conv3": 256, "conv4": 256, "conv5": 256, "pool5": 256})


class CompactNet(_Sequential):
    """A small BatchNorm CNN for CPU runs on the synthetic benchmark (not from a paper).

    Four 3x3 conv blocks (32, 64, 128, 128 channels); the first three halve the resolution, so a 64 px input gives an
    8x8 ``block4`` map. Maps: ``block1`` … ``block4``.
    """

    default_input_size = 64

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        w = width
        stages = OrderedDict(
            block1=nn.Sequential(block(in_channels, w, 2), block(w, w, 1)),
            block2=block(w, 2 * w, 2),
            block3=block(2 * w, 4 * w, 2),
            block4=block(4 * w, 4 * w, 1),
        )
        super().__init__(stages, {"block1": w, "block2": 2 * w, "block3": 4 * w, "block4": 4 * w})


def _download_state_dict(weights_enum: type, weights: str, arch: str) -> dict[str, torch.Tensor]:
    """Resolve ``weights`` (e.g. ``"DEFAULT"``, ``"IMAGENET1K_V1"``) and download it, or fail with one clear line."""
    resolved = weights_enum.verify(weights)
    try:
        return resolved.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError, HTTPError, socket errors, a corrupt file: all mean "no weights"
        raise RuntimeError(
            f"could not download the {arch} weights {resolved} ({type(err).__name__}: {err}); "
            f"use weights=None to train from scratch, or place {resolved.url.rsplit('/', 1)[-1]} in "
            f"{torch.hub.get_dir()}/checkpoints/"
        ) from None


class InceptionV3(Backbone):
    """torchvision InceptionV3 (Szegedy et al., CVPR 2016) up to ``Mixed_7c``, as in the Bhunia-group baselines.

    The modules are called in order without ``transform_input`` (inputs are ImageNet-normalised by the caller).
    Maps: ``Mixed_5d`` (288), ``Mixed_6e`` (768), ``Mixed_7a`` (1280), ``Mixed_7b`` (2048), ``Mixed_7c`` (2048);
    a 299 px input gives 8x8 ``Mixed_7*`` maps. ``weights`` is passed to torchvision (``"DEFAULT"``,
    ``"IMAGENET1K_V1"``) or ``None`` for random initialisation.
    """

    default_input_size = 299
    feature_names = ("Mixed_5d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")
    channels = {"Mixed_5d": 288, "Mixed_6e": 768, "Mixed_7a": 1280, "Mixed_7b": 2048, "Mixed_7c": 2048}

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        from torchvision.models import Inception_V3_Weights, inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=True)
        if weights is not None:
            net.load_state_dict(_download_state_dict(Inception_V3_Weights, weights, "InceptionV3"))
        self.stem = nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
                                  net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2)
        self.Mixed_5d = nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d)
        self.Mixed_6e = nn.Sequential(net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e)
        self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = net.Mixed_7a, net.Mixed_7b, net.Mixed_7c

    def forward(self, x: torch.Tensor) -> FeatureMaps:
        out: FeatureMaps = {}
        x = self.stem(x)
        for name in self.feature_names:
            x = getattr(self, name)(x)
            out[name] = x
        return out


class VGG16(_Sequential):
    """torchvision VGG16 convolutional part (Simonyan & Zisserman, ICLR 2015), as in the Bhunia-group baselines.

    Maps: ``conv4_3`` (512, after ReLU), ``conv5_3`` (512, after ReLU), ``pool5`` (512; 7x7 for a 224 px input).
    """

    default_input_size = 224

    def __init__(self, weights: str | None = None) -> None:
        from torchvision.models import VGG16_Weights
        from torchvision.models.vgg import cfgs, make_layers

        f = make_layers(cfgs["D"], batch_norm=False)  # VGG16 features only: its 120M-weight classifier is never built
        for m in f.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's VGG initialisation
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if weights is not None:
            state = _download_state_dict(VGG16_Weights, weights, "VGG16")
            f.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        # indices: conv4_3 ReLU = 22, conv5_3 ReLU = 29, pool5 = 30
        stages = OrderedDict(conv4_3=f[:23], conv5_3=f[23:30], pool5=f[30:])
        super().__init__(stages, {"conv4_3": 512, "conv5_3": 512, "pool5": 512})


def _no_weights(name: str, factory: Callable[[], Backbone]) -> Callable[..., Backbone]:
    def build(weights: str | None = None) -> Backbone:
        if weights is not None:
            raise ValueError(f"backbone {name!r} has no downloadable pretrained weights; use weights=None")
        return factory()
    return build


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "sketchanet": _no_weights("sketchanet", SketchANet),
    "compact": _no_weights("compact", CompactNet),
    "inception_v3": InceptionV3,
    "vgg16": VGG16,
}


def build_backbone(name: str, weights: str | None = None) -> Backbone:
    """Build a backbone by name: ``sketchanet``, ``compact``, ``inception_v3``, ``vgg16``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](weights=weights)
