"""Vector sketches: validation, strokes, normalisation, resampling, and the stroke statistics."""
import numpy as np
import pytest

from sbir_core.data.sketch import Sketch, normalise, resample, stroke_statistics
from sbir_core.errors import DataError


def l_shape() -> Sketch:
    # stroke 1: 30 px horizontal; stroke 2: 10 px vertical
    return Sketch.from_strokes([np.array([[0.0, 0.0], [30.0, 0.0]]), np.array([[0.0, 5.0], [0.0, 15.0]])])


def test_from_array_validates_and_ends_the_last_stroke():
    s = Sketch.from_array([[1, 2, 0], [3, 4, 0]], "x.pkl")
    assert s.points.dtype == np.float64 and s.points[-1, 2] == 1 and s.n_strokes == 1
    for bad, message in [(np.zeros((0, 3)), "empty"), (np.zeros((3,)), "shape"), (np.zeros((2, 4)), "shape"),
                         ([[0, 0, 2]], "pen state"), ([[np.inf, 0, 1]], "NaN or infinite"),
                         (np.array([["a", "b", "c"]]), "non-numeric")]:
        with pytest.raises(DataError, match=message):
            Sketch.from_array(bad, "x.pkl")
    with pytest.raises(DataError, match=r"^x\.pkl: "):
        Sketch.from_array(np.zeros((0, 3)), "x.pkl")


def test_strokes_and_lengths():
    s = l_shape()
    assert s.n_points == 4 and s.n_strokes == 2
    assert [len(st) for st in s.strokes()] == [2, 2]
    np.testing.assert_allclose(s.stroke_lengths(), [30.0, 10.0])


def test_normalise_and_resample():
    pts = normalise(np.array([[0.0, 0.0, 0], [100.0, 50.0, 1]]))
    np.testing.assert_allclose(pts[:, :2], [[33.0, 80.5], [223.0, 175.5]])
    line = resample(np.array([[0.0, 0.0], [100.0, 0.0]]), 12.5)
    assert len(line) == 9 and np.allclose(np.diff(line[:, 0]), 12.5)
    np.testing.assert_array_equal(resample(np.array([[5.0, 5.0], [5.0, 5.0]]), 10), [[5.0, 5.0]])


def test_stroke_statistics_on_a_known_sketch():
    st = stroke_statistics([l_shape(), l_shape()])
    assert st["sketches"] == 2 and st["points_mean"] == 4 and st["strokes_median"] == 2
    assert st["ink_share"][:2] == pytest.approx([0.75, 0.25]) and st["ink_share"][2] == 0
    assert st["spacing_median"] == pytest.approx(20.0)  # segment lengths 30 and 10
    assert st["longer_side_mean"] == pytest.approx(30.0)
    assert st["strokes_at_15"] == 0
    with pytest.raises(DataError):
        stroke_statistics([])
