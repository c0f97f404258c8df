"""Residual spatial attention and coarse-fine fusion (Song et al. ICCV 2017; Yu et al. IJCV 2020, Sect. 4.2-4.3).

The attention module scores every spatial position of a convolutional feature map with two 1x1 convolutions, turns
the scores into a probability map with a softmax over space (IJCV eq. 3), re-weights the map (eq. 4) and adds the input
back through a shortcut (eq. 5). Coarse-fine fusion concatenates the pooled attended map (the fine, local cue) with the
network's final-layer feature (the coarse, global cue), so the attended detail reaches the loss directly.

Registered models (``ModelConfig.name``), on any backbone, for the ablations of IJCV Table 4:
``triplet-sn`` is the Base, ``attention`` = Base + attention, ``fusion`` = Base + coarse-fine fusion, and
``attention-fusion`` = both; the DSSA full model is ``attention-fusion`` trained with the HOLEF loss
(``LossConfig(name="holef")``). ``ModelConfig.options`` may set ``at`` (the map that is attended), ``residual``
(False: no shortcut), ``attention_hidden``, ``fusion_channels`` (None: no 1x1 reduction) and ``normalize_parts``
(False: concatenate the fine and coarse parts without L2-normalising each).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sbir_core.config import ModelConfig
from sbir_core.models import EmbeddingNet, SBIRModel, build_backbone, build_head, register_model
from sbir_core.models.backbones import Backbone, FeatureMaps


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
    (the official DSSA code pools the attended map as it is). With ``normalize_parts`` each part is L2-normalised
    before the concatenation, as in the official DSSA code, so that neither part drowns the other whatever their
    scales (the IJCV paper does not say). Output dimension: ``out_dim(final_dim)``.
    """

    def __init__(self, in_channels: int, reduced_channels: int | None = 512, normalize_parts: bool = True) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, reduced_channels, kernel_size=1) if reduced_channels else nn.Identity()
        self.fine_dim = reduced_channels or in_channels
        self.normalize_parts = normalize_parts

    def out_dim(self, final_dim: int) -> int:
        """Dimension of the fused feature for a final-layer feature of ``final_dim``."""
        return self.fine_dim + final_dim

    def forward(self, attended: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        """``attended`` (B, C, H, W), ``final`` (B, D) -> ``concat[GAP(conv1x1(attended)), final]`` (B, fine + D)."""
        fine, coarse = self.reduce(attended).mean(dim=(2, 3)), final.flatten(1)
        if self.normalize_parts:
            fine, coarse = F.normalize(fine.float(), dim=1), F.normalize(coarse.float(), dim=1)
        return torch.cat([fine, coarse], dim=1)


#: Where attention goes by default: IJCV after Mixed_7b of InceptionV3, so that the last block (Mixed_7c) follows it
#: and fusion joins a mid-level attended map with the final feature; DSSA on the pool5 map of Sketch-a-Net; on the
#: compact CNN, after block3, with block4 following (as IJCV); never on the final map, which would fuse it with itself.
DEFAULT_ATTENTION_AT = {"inception_v3": "Mixed_7b", "sketchanet": "pool5", "compact": "block3", "vgg16": "conv5_3"}
#: The 1x1 reduction before fusion: IJCV reduces 2048 -> 512 channels; DSSA pools the attended map as it is.
DEFAULT_FUSION_CHANNELS = {"inception_v3": 512, "vgg16": 256}


def _stages(backbone: Backbone) -> list[tuple[str | None, nn.Module]]:
    """The backbone's stages in order as (name of the map it outputs, or None for an unnamed stem, module)."""
    stages = getattr(backbone, "stages", None)
    if isinstance(stages, nn.ModuleDict):  # Sketch-a-Net, the compact CNN, VGG16
        return list(stages.items())
    if isinstance(getattr(backbone, "stem", None), nn.Module):  # InceptionV3: a stem, then one module per map
        return [(None, backbone.stem)] + [(name, getattr(backbone, name)) for name in backbone.feature_names]
    raise ValueError(f"cannot insert attention into a {type(backbone).__name__}: its stages are not exposed")


class AttendedBackbone(Backbone):
    """A backbone with residual spatial attention after map ``at``: later stages see the attended map.

    The returned maps are the backbone's, with ``at`` replaced by the attended map ``f_s^att`` and the attention mask
    added as ``"<at>_attention"`` (B, 1, H, W), right after it.
    """

    def __init__(self, backbone: Backbone, at: str, residual: bool = True, hidden: int | None = None) -> None:
        super().__init__()
        if at not in backbone.channels:
            raise ValueError(f"the backbone has no map {at!r}; it has {list(backbone.feature_names)}")
        self.inner, self.at = backbone, at
        self.attention = ResidualSpatialAttention(backbone.channels[at], hidden, residual=residual)
        self.mask_name = f"{at}_attention"
        names = list(backbone.feature_names)
        names.insert(names.index(at) + 1, self.mask_name)
        self.feature_names = tuple(names)
        self.channels = {**backbone.channels, self.mask_name: 1}
        self.default_input_size = backbone.default_input_size

    @property
    def final(self) -> str:
        return self.inner.final

    def forward(self, x: torch.Tensor) -> FeatureMaps:
        out: FeatureMaps = {}
        for name, stage in _stages(self.inner):
            x = stage(x)
            if name == self.at:
                x, alpha = self.attention(x)
                out[name], out[self.mask_name] = x, alpha.unsqueeze(1)
            elif name is not None:
                out[name] = x
        return out


class FusionHead(nn.Module):
    """Coarse-fine fusion as a head: ``concat[pool(reduce(maps[at])), base_head(maps)]``."""

    def __init__(self, base: nn.Module, at: str, in_channels: int, reduced_channels: int | None,
                 normalize_parts: bool = True) -> None:
        super().__init__()
        self.base, self.at = base, at
        self.fusion = CoarseFineFusion(in_channels, reduced_channels, normalize_parts)
        self.out_dim = self.fusion.out_dim(int(base.out_dim))

    def forward(self, maps: FeatureMaps) -> torch.Tensor:
        return self.fusion(maps[self.at], self.base(maps))


def build_attention_net(cfg: ModelConfig, attention: bool, fusion: bool) -> EmbeddingNet:
    """One branch: backbone (+ residual attention at ``at``) -> head (+ coarse-fine fusion) -> L2 norm."""
    opts = dict(cfg.options)
    unknown = set(opts) - {"at", "residual", "attention_hidden", "fusion_channels", "normalize_parts"}
    if unknown:
        raise ValueError(f"unknown model options {sorted(unknown)} for {cfg.name!r}")
    backbone = build_backbone(cfg.backbone, cfg.weights)
    at = opts.get("at", DEFAULT_ATTENTION_AT.get(cfg.backbone, backbone.final))
    if at not in backbone.channels:
        raise ValueError(f"backbone {cfg.backbone!r} has no map {at!r}; it has {list(backbone.feature_names)}")
    if attention:
        backbone = AttendedBackbone(backbone, at, residual=bool(opts.get("residual", True)),
                                    hidden=opts.get("attention_hidden"))
    head = build_head(cfg, backbone)
    if fusion:
        head = FusionHead(head, at, backbone.channels[at],
                          opts.get("fusion_channels", DEFAULT_FUSION_CHANNELS.get(cfg.backbone)),
                          normalize_parts=bool(opts.get("normalize_parts", True)))
    # Fusion with normalised parts gives a vector of norm sqrt(2), as the official DSSA code feeds its loss; normalising
    # it again would halve the squared distances and so double the effective margin.
    return EmbeddingNet(backbone, head, normalize=not (fusion and head.fusion.normalize_parts))


def _register(name: str, attention: bool, fusion: bool, what: str) -> None:
    def builder(cfg: ModelConfig) -> SBIRModel:
        sketch = build_attention_net(cfg, attention, fusion)
        return SBIRModel(sketch, None if cfg.shared else build_attention_net(cfg, attention, fusion))

    builder.__doc__ = f"{what} (Song et al. ICCV 2017; Yu et al. IJCV 2020, Table 4)."
    register_model(name)(builder)


_register("attention", attention=True, fusion=False, what="Base + residual spatial attention")
_register("fusion", attention=False, fusion=True, what="Base + coarse-fine fusion (no attention)")
_register("attention-fusion", attention=True, fusion=True, what="Base + attention + coarse-fine fusion")
