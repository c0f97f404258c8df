"""Backbones (named maps, the papers' layer sizes), heads, embedding nets, the model registry and input handling."""
from __future__ import annotations

import pytest
import torch

from sbir_core.config import ModelConfig
from sbir_core.models import (MODELS, FlattenMLPHead, PoolHead, SBIRModel, build_backbone, build_model, photo_input,
                              register_model, sketch_input)
from sbir_core.models.backbones import _download_state_dict


def test_sketchanet_has_the_papers_layer_sizes():
    net = build_backbone("sketchanet")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (15, 15), (3, 3)), (128, (5, 5), (1, 1)), (256, (3, 3), (1, 1)), (256, (3, 3), (1, 1)),
        (256, (3, 3), (1, 1))]
    assert net.feature_shapes(225)["pool5"] == (256, 7, 7)  # Sketch Me That Shoe: 7x7x256 before fc6


def test_triplet_sn_paper_head_is_fc6_512_fc7_256_l2():
    model = build_model(ModelConfig(backbone="sketchanet", input_size=225, head="mlp", hidden_dim=512, embed_dim=256))
    linears = [m for m in model.sketch.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(256 * 7 * 7, 512), (512, 256)]
    out = model.embed_sketch(torch.randn(2, 3, 225, 225))
    assert out.shape == (2, 256)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_compact_backbone_named_maps():
    net = build_backbone("compact")
    maps = net(torch.randn(2, 3, 64, 64))
    assert list(maps) == ["block1", "block2", "block3", "block4"] and net.final == "block4"
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "block1": (32, 32, 32), "block2": (64, 16, 16), "block3": (128, 8, 8), "block4": (128, 8, 8)}


def test_inception_exposes_mixed_7b_and_7c():
    net = build_backbone("inception_v3")
    shapes = net.feature_shapes(139)  # the smallest comfortable input keeps the test fast
    assert list(shapes) == ["Mixed_5d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    assert shapes["Mixed_7b"][0] == shapes["Mixed_7c"][0] == 2048
    assert net.feature_shapes(299)["Mixed_7c"] == (2048, 8, 8)


def test_vgg16_maps():
    net = build_backbone("vgg16")
    assert net.feature_shapes(64) == {"conv4_3": (512, 8, 8), "conv5_3": (512, 4, 4), "pool5": (512, 2, 2)}


def test_unavailable_weights_fail_with_one_clear_line(monkeypatch):
    from torchvision.models import VGG16_Weights

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as info:
        _download_state_dict(VGG16_Weights, "DEFAULT", "VGG16")
    message = str(info.value)
    assert "\n" not in message and "weights=None" in message and "checkpoints" in message
    with pytest.raises(ValueError, match="no downloadable pretrained weights"):
        build_backbone("sketchanet", weights="DEFAULT")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet")


def test_pool_head_is_the_bhunia_baseline():
    model = build_model(ModelConfig(backbone="compact", input_size=32, head="pool", embed_dim=None))
    assert isinstance(model.sketch.head, PoolHead) and model.embed_dim == 128
    maps = model.sketch.backbone(torch.randn(3, 3, 32, 32))
    raw = model.sketch.head(maps)
    torch.testing.assert_close(raw, maps["block4"].amax(dim=(2, 3)))


def test_shared_and_separate_branches():
    torch.manual_seed(0)
    shared = build_model(ModelConfig(input_size=32, shared=True))
    separate = build_model(ModelConfig(input_size=32, shared=False))
    x = torch.randn(2, 3, 32, 32)
    shared.eval(), separate.eval()
    assert shared.shared and not separate.shared
    torch.testing.assert_close(shared.embed_sketch(x), shared.embed_photo(x))
    assert not torch.allclose(separate.embed_sketch(x), separate.embed_photo(x))
    n_shared = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in separate.parameters()) == 2 * n_shared


def test_head_reads_a_named_intermediate_map():
    model = build_model(ModelConfig(input_size=32, head="mlp", feature="block2", hidden_dim=16, embed_dim=8))
    head = model.sketch.head
    assert isinstance(head, FlattenMLPHead) and head.mlp[1].in_features == 64 * 8 * 8
    with pytest.raises(ValueError, match="has no map"):
        build_model(ModelConfig(input_size=32, feature="Mixed_7b"))


def test_registry_extension_point():
    @register_model("test-tiny")
    def tiny(cfg: ModelConfig) -> SBIRModel:
        return MODELS["triplet-sn"](cfg)

    try:
        assert isinstance(build_model(ModelConfig(name="test-tiny", input_size=32)), SBIRModel)
        with pytest.raises(ValueError, match="already registered"):
            register_model("test-tiny")(tiny)
    finally:
        MODELS.pop("test-tiny")
    with pytest.raises(ValueError, match="unknown model"):
        build_model(ModelConfig(name="nope"))


def test_input_conventions():
    ink = torch.zeros(1, 4, 4)
    ink[0, 1, 1] = 1.0
    x = sketch_input(ink)
    assert x.shape == (1, 3, 4, 4)
    # paper polarity: background (ink 0) is white, the stroke is black, identically on the three channels
    white = photo_input(torch.full((1, 4, 4, 3), 255, dtype=torch.uint8))
    black = photo_input(torch.zeros(1, 4, 4, 3, dtype=torch.uint8))
    torch.testing.assert_close(x[0, :, 0, 0], white[0, :, 0, 0])
    torch.testing.assert_close(x[0, :, 1, 1], black[0, :, 0, 0])
    torch.testing.assert_close(sketch_input((ink * 255).to(torch.uint8)), x)
