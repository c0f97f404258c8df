"""The fast batched renderer agrees with the official-style reference, pixel for pixel, on every schedule."""
import numpy as np
import pytest
import torch

import torch.nn.functional as F

from sbir_core.data.render import (bresenham, progressive_rasters, progressive_reference, render_reference,
                                   render_sketches)
from sbir_core.data.sketch import Sketch


def random_sketch(rng: np.random.Generator, n_strokes: int = 6) -> Sketch:
    strokes = []
    for _ in range(n_strokes):
        n = int(rng.integers(1, 25))
        start = rng.uniform(-10, 266, 2)  # some points off the frame, to test clipping
        strokes.append(start + np.cumsum(rng.normal(0, 9, (n, 2)), axis=0))
    return Sketch.from_strokes(strokes)


def test_bresenham_matches_the_package_definition():
    assert bresenham(0, 0, 5, 2) == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]
    assert bresenham(3, 3, 3, 3) == [(3, 3)]
    assert bresenham(2, 5, 0, 0)[0] == (2, 5) and bresenham(2, 5, 0, 0)[-1] == (0, 0)
    assert len(bresenham(0, 0, -7, 3)) == 8


def test_reference_drops_row_and_column_zero_and_dilates_with_a_cross():
    sketch = Sketch.from_array(np.array([[10.0, 10.0, 1.0], [0.0, 5.0, 1.0]]))
    image = render_reference(sketch)
    assert image[10, 10] and image[9, 10] and image[11, 10] and image[10, 9] and image[10, 11]
    assert not image[9, 9]  # the 3x3 cross leaves the diagonal empty
    assert image.sum() == 5  # the point on column 0 is dropped


@pytest.mark.parametrize("schedule,steps", [("points", 20), ("points", 7), ("strokes", 20), ("official17", 17)])
def test_fast_progressive_equals_reference(schedule, steps):
    rng = np.random.default_rng(1)
    sketches = [random_sketch(rng, int(rng.integers(1, 9))) for _ in range(6)]
    fast = progressive_rasters(sketches, steps=steps, schedule=schedule, dtype=torch.bool, chunk=4).numpy()
    ref = np.stack([progressive_reference(s, steps, schedule) for s in sketches])
    assert fast.shape == ref.shape == (6, steps, 256, 256)
    assert np.array_equal(fast, ref)


def test_progressive_is_monotone_and_ends_with_the_whole_sketch():
    rng = np.random.default_rng(2)
    sketches = [random_sketch(rng) for _ in range(3)]
    steps = progressive_rasters(sketches, steps=10)
    assert steps.dtype == torch.float32 and steps.shape == (3, 10, 256, 256)
    assert bool((steps[:, 1:] >= steps[:, :-1]).all())
    assert torch.equal(steps[:, -1], render_sketches(sketches))
    assert np.array_equal(render_sketches(sketches).numpy().astype(bool), np.stack([render_reference(s) for s in sketches]))


def test_official17_thresholds_follow_the_released_code():
    points = np.zeros((40, 3))
    points[:, 0] = np.arange(40) * 5 + 5
    points[:, 1] = 100
    points[-1, 2] = 1
    sketch = Sketch.from_array(points)
    ink = progressive_rasters([sketch], schedule="official17", dtype=torch.bool)[0]
    # round(linspace(0, 40, 18)[1]) = 2: the first snapshot holds points 0..2, so it reaches x = 15 but not x = 20
    assert ink.shape[0] == 17
    assert bool(ink[0, 100, 15]) and not bool(ink[0, 100, 17])


def test_resized_rasters_are_in_unit_range_with_ink_one():
    sketch = random_sketch(np.random.default_rng(3))
    small = render_sketches([sketch], size=64)
    assert small.shape == (1, 64, 64)
    assert 0.0 <= float(small.min()) and float(small.max()) <= 1.0 and float(small.max()) > 0.5
    assert float(small.mean()) < 0.5  # background is 0
    assert torch.allclose(small.sum() * 16, render_sketches([sketch]).sum(), rtol=1e-4)


@pytest.mark.parametrize("size", [64, 100])
def test_small_rasters_are_the_area_average_of_the_256_ones(size):
    sketches = [random_sketch(np.random.default_rng(4 + i)) for i in range(3)]
    binary = progressive_rasters(sketches, steps=5, schedule="strokes", dtype=torch.bool).float()
    expected = F.interpolate(binary.flatten(0, 1)[:, None], size=(size, size), mode="area")[:, 0].view(3, 5, size, size)
    small = progressive_rasters(sketches, steps=5, size=size, schedule="strokes")
    assert small.shape == (3, 5, size, size)
    assert torch.allclose(small, expected, atol=1e-6)


@pytest.mark.parametrize("size", [32, 64, 72, 100, 128, 225, 256, 299])
def test_whole_rasters_are_bit_for_bit_the_area_resize_of_the_256_ones(size):
    """render_sketches counts ink per window instead of resizing floats: the same bits as F.interpolate (the training
    data, the drawing pad's JavaScript and the cache keys all rest on them), and the last progressive step."""
    sketches = [random_sketch(np.random.default_rng(20 + i)) for i in range(5)]
    full = render_sketches(sketches)[:, None]
    mode = {"mode": "area"} if size <= 256 else {"mode": "bilinear", "align_corners": False}
    assert torch.equal(render_sketches(sketches, size, chunk=2), F.interpolate(full, size=(size, size), **mode)[:, 0])
    assert torch.equal(render_sketches(sketches, size), progressive_rasters(sketches, steps=3, size=size)[:, -1])
