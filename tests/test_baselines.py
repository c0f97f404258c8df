"""Pixel and HOG baselines, and the ranking SVM, on tiny hand-made data."""
from __future__ import annotations

import numpy as np
import pytest

from sbir_core.baselines import RankSVM, hog_features, hog_ranksvm_distances, pixel_features, pixel_nn_distances
from sbir_core.metrics import retrieval_metrics


class Shapes:
    """Photos are dark rectangles at distinct places on white; each sketch is its photo's outline."""

    def __init__(self, n: int = 6, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.boxes = [(int(t), int(l), int(h), int(w)) for t, l, h, w in
                      zip(rng.integers(4, 20, n), rng.integers(4, 20, n), rng.integers(10, 40, n),
                          rng.integers(10, 40, n))]
        self.photo_names = [str(i) for i in range(n)]
        self.positives = np.arange(n)

    def __len__(self) -> int:
        return len(self.positives)

    def _box(self, i: int, size: int, outline: bool) -> np.ndarray:
        t, l, h, w = (v * size // 64 for v in self.boxes[i])
        img = np.zeros((size, size), dtype=np.float32)
        img[t:t + h, l:l + w] = 1
        if outline:
            img[t + 1:t + h - 1, l + 1:l + w - 1] = 0
        return img

    def sketch_rasters(self, size: int = 256) -> np.ndarray:
        return np.stack([self._box(i, size, True) for i in range(len(self))])

    def photos(self, size: int = 256) -> np.ndarray:
        dark = np.stack([self._box(i, size, False) for i in range(len(self))])
        return np.repeat(((1 - dark) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def test_hog_is_576_dimensional_as_in_the_paper():
    assert hog_features(np.random.default_rng(0).random((2, 128, 128))).shape == (2, 576)


def test_pixel_features_are_centred_unit_vectors():
    f = pixel_features(np.random.default_rng(0).random((3, 64, 64)), size=16)
    assert f.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(f.mean(axis=1), 0, atol=1e-6)


def test_baselines_retrieve_shapes_better_than_chance():
    data = Shapes()
    pixel = retrieval_metrics(pixel_nn_distances(data, render_size=64), data.positives)
    plain, svm = hog_ranksvm_distances(Shapes(n=12, seed=1), data, render_size=64)
    assert pixel["mean_rank"] < 3.5 and retrieval_metrics(plain, data.positives)["mean_rank"] < 3.5
    assert svm.shape == (6, 6)


def test_ranksvm_learns_to_ignore_a_noisy_dimension():
    rng = np.random.default_rng(0)
    n = 40
    photos = rng.random((n, 2))
    photos[:, 1] *= 5  # dimension 1 is large noise
    sketches = photos.copy()
    sketches[:, 1] = rng.random(n) * 5  # ... unrelated between sketch and photo
    sketches[:, 0] += rng.normal(0, 0.01, n)
    svm = RankSVM(lam=1e-4, negatives=10).fit(sketches, photos, np.arange(n))
    assert svm.w[0] > 5 * abs(svm.w[1])
    before = retrieval_metrics(np.abs(sketches[:, None] - photos[None]).sum(-1), np.arange(n))
    after = retrieval_metrics(svm.distances(sketches, photos), np.arange(n))
    assert after["acc@1"] > before["acc@1"]
    with pytest.raises(RuntimeError, match="fit"):
        RankSVM().distances(sketches, photos)
