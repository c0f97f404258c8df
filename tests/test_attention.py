"""Residual spatial attention (IJCV eqs. 3-5) and coarse-fine fusion."""
from __future__ import annotations

import numpy as np
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
    plain = CoarseFineFusion(8, reduced_channels=None, normalize_parts=False)  # pool the attended map as it is
    f, final = _map(), torch.randn(2, 3)
    fused = plain(f, final)
    torch.testing.assert_close(fused[:, :8], f.mean(dim=(2, 3)))
    torch.testing.assert_close(fused[:, 8:], final)
    balanced = CoarseFineFusion(8, reduced_channels=None)  # DSSA code: each part L2-normalised
    fused = balanced(f, 100 * final)
    torch.testing.assert_close(fused[:, :8].norm(dim=1), torch.ones(2))
    torch.testing.assert_close(fused[:, 8:], torch.nn.functional.normalize(final, dim=1))


# --- the registered models -------------------------------------------------------------------------------------------
from sbir_core.config import ModelConfig  # noqa: E402
from sbir_core.models import MODELS, build_model  # noqa: E402
from sbir_core.models.attention import AttendedBackbone, FusionHead  # noqa: E402


def test_models_are_registered():
    assert {"attention", "fusion", "attention-fusion"} <= set(MODELS)


@pytest.mark.parametrize("name, dim", [("triplet-sn", 64), ("attention", 64), ("fusion", 64 + 128),
                                       ("attention-fusion", 64 + 128)])
def test_ablation_models_on_the_compact_backbone(name, dim):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, backbone="compact", input_size=32, hidden_dim=32, embed_dim=64))
    assert model.embed_dim == dim
    out = model.embed_photo(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, dim)
    # fused vectors are two L2-normalised parts (norm sqrt 2, as the official DSSA code); the others are normalised
    expected = 2 ** 0.5 if "fusion" in name else 1.0
    torch.testing.assert_close(out.norm(dim=1), torch.full((3,), expected))
    assert isinstance(model.sketch.backbone, AttendedBackbone) == ("attention" in name)
    assert isinstance(model.sketch.head, FusionHead) == ("fusion" in name)


def test_attended_backbone_feeds_the_attended_map_forward():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="attention", backbone="compact", input_size=32, options={"at": "block3"}))
    backbone = model.sketch.backbone
    assert backbone.feature_names == ("block1", "block2", "block3", "block3_attention", "block4")
    x = torch.randn(2, 3, 32, 32)
    backbone.eval()
    maps = backbone(x)
    plain = backbone.inner(x)
    alpha = maps["block3_attention"]
    assert alpha.shape == (2, 1, 4, 4)
    torch.testing.assert_close(alpha.sum(dim=(1, 2, 3)), torch.ones(2))
    torch.testing.assert_close(maps["block3"], plain["block3"] * (1 + alpha))
    torch.testing.assert_close(maps["block4"], backbone.inner.stages["block4"](maps["block3"]))


def test_no_shortcut_option_and_unknown_options():
    model = build_model(ModelConfig(name="attention", input_size=32, options={"residual": False}))
    assert model.sketch.backbone.attention.residual is False
    with pytest.raises(ValueError, match="unknown model options"):
        build_model(ModelConfig(name="attention", input_size=32, options={"shortcut": False}))
    with pytest.raises(ValueError, match="no map"):
        build_model(ModelConfig(name="fusion", input_size=32, options={"at": "Mixed_7b"}))


def test_dssa_on_sketchanet_is_512d():
    # DSSA: attention on the 7x7x256 pool5 map; fc7 (256) concatenated with the pooled attended map (256).
    model = build_model(ModelConfig(name="attention-fusion", backbone="sketchanet", input_size=225))
    assert model.embed_dim == 512
    assert model.sketch.backbone.at == "pool5"


def test_ijcv_full_model_on_inception_is_2560d():
    model = build_model(ModelConfig(name="attention-fusion", backbone="inception_v3", input_size=139, head="pool",
                                    pool="avg", embed_dim=None))
    assert model.embed_dim == 2560  # 512 (reduced attended Mixed_7b) + 2048 (Mixed_7c)
    assert model.sketch.backbone.at == "Mixed_7b"
    assert model.sketch.head.fusion.reduce.out_channels == 512


# --- scoring attention against part boxes -----------------------------------------------------------------------------
from sbir_core.part_attention import (attention_masks, cell_centres, discriminative_attributes,  # noqa: E402
                                      part_boxes, peak_in_part)


def test_discriminative_attributes_are_those_of_the_nearest_lookalikes():
    attrs = [{"heel": "flat", "sole": "thin", "trim": "plain"},
             {"heel": "block", "sole": "thin", "trim": "plain"},    # differs from 0 in heel only
             {"heel": "block", "sole": "thick", "trim": "stripe"}]  # differs from 1 in sole and trim
    out = discriminative_attributes(attrs, [0, 1, 2, 0])
    assert out == [{"heel"}, {"heel"}, {"sole", "trim"}, {"heel"}]


def test_part_boxes_follow_the_attribute_map_and_reject_unknown_parts():
    boxes = {"outline": [0, 0, 9, 9], "heel": [7, 5, 9, 9], "laces": [1, 1, 3, 3], "tongue": [2, 0, 3, 1]}
    assert part_boxes(boxes, {"heel"}, "shoe") == [[7, 5, 9, 9]]
    assert part_boxes(boxes, {"closure"}, "shoe") == [[1, 1, 3, 3], [2, 0, 3, 1]]
    # the toe has no part: the front quarter of the outline, up to 0.3 of its length above the ground
    assert part_boxes(boxes, {"closure", "toe"}, "shoe") == [[1, 1, 3, 3], [2, 0, 3, 1], [0, 6.3, 2.25, 9]]
    assert part_boxes({"heel": [7, 5, 9, 9]}, {"toe"}, "shoe") == []
    with pytest.raises(ValueError, match="not in PARTS_OF_ATTRIBUTE"):
        part_boxes({**boxes, "antenna": [0, 0, 1, 1]}, {"heel"}, "shoe")
    with pytest.raises(ValueError, match="no part map"):
        part_boxes(boxes, {"heel"}, "teapot")


def test_cell_centres_map_the_centre_crop_back_to_the_frame():
    xs, ys = cell_centres((2, 2), side=80, size=64, frame=160)  # crop offset 8 px; cells 32 px; frame = 2 x side
    np.testing.assert_allclose(xs[0], [(8 + 16) * 2, (8 + 48) * 2])
    np.testing.assert_allclose(ys[:, 0], [(8 + 16) * 2, (8 + 48) * 2])


def test_peak_in_part_counts_hits_and_chance_levels():
    # 4x4 masks over the full 256 frame (side = size): cell centres at 32, 96, 160, 224.
    masks = np.zeros((3, 4, 4))
    masks[0, 0, 3] = 1.0  # peak at (x=224, y=32): inside the part box below
    masks[1, 3, 0] = 1.0  # peak at (x=32, y=224): outside
    masks[1, 0, 3] = 0.5  # ... with a third of its mass inside
    boxes = [[[200, 0, 256, 64]], [[200, 0, 256, 64]], []]  # the third image has no part: not scored
    outlines = [[0, 0, 256, 128]] * 3  # the object covers the top two rows of cells
    score = peak_in_part(masks, boxes, outlines, side=256, size=256)
    assert score.hits.tolist() == [True, False] and score.scored.tolist() == [0, 1]
    assert score.rate == 0.5
    np.testing.assert_allclose(score.mass, [1.0, 1 / 3])
    assert score.on_object.tolist() == [True, False]  # the object covers the top half only
    np.testing.assert_allclose(score.chance_uniform, [1 / 16, 1 / 16])
    np.testing.assert_allclose(score.chance_object, [1 / 8, 1 / 8])
    assert score.summary()["n_scored"] == 2


def test_attention_masks_of_a_model():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="attention-fusion", backbone="compact", input_size=32, hidden_dim=16,
                                    embed_dim=16))
    sketches = torch.randint(0, 256, (5, 40, 40), dtype=torch.uint8)
    masks = attention_masks(model, sketches, "sketch", 32, batch_size=2)
    assert masks.shape == (5, 4, 4)
    np.testing.assert_allclose(masks.sum(axis=(1, 2)), np.ones(5), rtol=1e-5)
    photos = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8)
    assert attention_masks(model, photos, "photo", 32).shape == (3, 4, 4)
    with pytest.raises(ValueError, match="no attention module"):
        attention_masks(build_model(ModelConfig(input_size=32)), sketches, "sketch", 32)


def test_judge_gives_a_verdict_only_for_models_that_retrieve_and_learned():
    from sbir_core.part_attention import judge

    rng = np.random.default_rng(0)
    chance = np.full((3, 200), 0.2)
    found = (rng.random((3, 200)) < 0.6).astype(float)  # peaks in a part 60% of the time
    start = (rng.random((3, 200)) < 0.2).astype(float)  # at their initial weights: about chance
    v = judge(found, start, chance, acc1=0.25, gallery=100)
    assert v.label == "reproduced" and v.learned.low > 0 and v.vs_chance.low > 0 and "towards" in v.reason
    assert abs(v.rate - found.mean()) < 1e-12
    weak = judge(found, start, chance, acc1=0.05, gallery=100)
    assert weak.label == "no verdict" and "retrieves at 5.0% acc@1, below the 10%" in weak.reason
    assert weak.vs_chance.label == "reproduced", "the measurement is still made"
    same = judge(found, found, chance, acc1=0.25, gallery=100)
    assert same.label == "no verdict" and "no differently" in same.reason
    away = judge(start, found, chance, acc1=0.25, gallery=100)
    assert away.label == "not resolved" and away.learned.label == "contradicted" and "away from" in away.reason
