"""Shallow FG-SBIR baselines: pixel nearest neighbour, and dense HOG with a ranking SVM (Yu et al., IJCV 2020, Table 3).

* Pixel NN: sketch and photo are both reduced to a small "darkness" image (ink = dark, on white), centred and
  L2-normalised, and ranked by Euclidean distance. No learning.
* Dense HOG + rankSVM: HOG descriptors (Dalal & Triggs, CVPR 2005) on an 80 px image with 16 px cells and 2x2-cell
  blocks, 576-D as in the paper; a linear ranking SVM (Joachims, KDD 2002) on absolute-difference vectors
  (Prosser et al., BMVC 2010) learns a weight per HOG dimension, and a photo's distance to a sketch is
  ``w · |h_sketch - h_photo|``. With ``w = 1`` this is plain HOG nearest neighbour under the L1 distance.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import hog


class SplitLike(Protocol):
    photo_names: list[str]
    positives: np.ndarray

    def sketch_rasters(self, size: int = 256) -> np.ndarray: ...
    def photos(self, size: int = 256) -> np.ndarray: ...


def sketch_grey(split: SplitLike, size: int) -> np.ndarray:
    """Sketches as grey images in [0, 1], dark ink on white: (n, size, size)."""
    return 1.0 - np.asarray(split.sketch_rasters(size), dtype=np.float32)


def photo_grey(split: SplitLike, size: int) -> np.ndarray:
    """Photos as grey images in [0, 1] (ITU-R 601 luma): (m, size, size)."""
    rgb = np.asarray(split.photos(size), dtype=np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --- pixel nearest neighbour ----------------------------------------------------------------------------------------
def pixel_features(grey: np.ndarray, size: int = 32) -> np.ndarray:
    """Darkness (1 - grey) area-downsampled to ``size``, centred and L2-normalised: (n, size * size)."""
    t = torch.from_numpy(1.0 - grey.astype(np.float32))[:, None]
    v = F.adaptive_avg_pool2d(t, size).flatten(1)
    v = v - v.mean(dim=1, keepdim=True)
    return F.normalize(v, dim=1).numpy()


def pixel_nn_distances(test: SplitLike, size: int = 32, render_size: int = 128) -> np.ndarray:
    """(n_sketches, n_photos) Euclidean distances between pixel features of ``test``'s sketches and photos."""
    s = torch.from_numpy(pixel_features(sketch_grey(test, render_size), size))
    p = torch.from_numpy(pixel_features(photo_grey(test, render_size), size))
    return torch.cdist(s, p).numpy()


# --- dense HOG + ranking SVM ----------------------------------------------------------------------------------------
def hog_features(grey: np.ndarray, size: int = 80, cell: int = 16, orientations: int = 9) -> np.ndarray:
    """Dense HOG of each image resized to ``size``: (n, D); the defaults give the paper's 576-D."""
    t = torch.from_numpy(grey.astype(np.float32))[:, None]
    small = F.interpolate(t, size=(size, size), mode="area")[:, 0].numpy()
    return np.stack([hog(img, orientations=orientations, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                         block_norm="L2-Hys", feature_vector=True) for img in small]).astype(np.float32)


class RankSVM:
    """Linear ranking SVM on absolute differences: learn ``w`` so that ``w·|s - p+| + 1 <= w·|s - p-|``.

    Primal, squared hinge (as liblinear's L2-loss SVM), full-batch L-BFGS. Both the start and the regulariser
    ``lam/2 |w - 1|^2`` are the unlearned ranking, ``w = 1`` (HOG nearest neighbour under L1): with few training
    pairs the learned ``w`` stays near it instead of being pulled towards ``w = 0``, where every distance ties and
    learning would hurt. ``lam=None`` (the default) chooses the weight on held-out training photos
    (``select_lambda``). Training pairs: every training sketch with its true photo against
    ``negatives`` photos drawn at random from the other training photos (seeded).
    """

    def __init__(self, lam: float | None = None, negatives: int = 20, iterations: int = 100, seed: int = 0) -> None:
        self.lam, self.negatives, self.iterations, self.seed = lam, negatives, iterations, seed
        self.w: torch.Tensor | None = None

    def fit(self, sketch_feats: np.ndarray, photo_feats: np.ndarray, positives: np.ndarray) -> "RankSVM":
        """Learn ``w``; with ``lam=None`` the regulariser weight is first chosen by ``select_lambda``."""
        if self.lam is None:
            self.lam = select_lambda(sketch_feats, photo_feats, positives, seed=self.seed)
        return self.fit_pairs(pair_differences(sketch_feats, photo_feats, positives, self.negatives, self.seed))

    def fit_pairs(self, diff: torch.Tensor) -> "RankSVM":
        """Learn ``w`` from the training pairs' ``pair_differences`` (``select_lambda`` fits every weight on one set)."""
        w = torch.ones(diff.shape[1], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1, max_iter=self.iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.relu(1 - diff @ w).pow(2).mean() + 0.5 * self.lam * (w - 1).pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w = w.detach()
        return self

    def distances(self, sketch_feats: np.ndarray, photo_feats: np.ndarray, chunk: int = 64) -> np.ndarray:
        """(n, m) learned distances ``w · |s_i - p_j|``."""
        if self.w is None:
            raise RuntimeError("RankSVM.fit must be called before distances")
        s, p = torch.from_numpy(sketch_feats).double(), torch.from_numpy(photo_feats).double()
        rows = [((s[i:i + chunk, None, :] - p[None]).abs() @ self.w) for i in range(0, len(s), chunk)]
        return torch.cat(rows).numpy()


def pair_differences(sketch_feats: np.ndarray, photo_feats: np.ndarray, positives: np.ndarray, negatives: int = 20,
                     seed: int = 0) -> torch.Tensor:
    """``(n * k, D)`` float64 ``|s - p-| - |s - p+|``: every sketch with its true photo against ``k = negatives``
    photos drawn at random from the other photos (seeded); the ranking SVM wants ``w · row >= 1``."""
    s, p = torch.from_numpy(sketch_feats).double(), torch.from_numpy(photo_feats).double()
    pos = torch.from_numpy(np.asarray(positives, dtype=np.int64))
    n, m = len(pos), p.shape[0]
    k = min(negatives, m - 1)
    gen = torch.Generator().manual_seed(seed)
    neg = torch.stack([torch.randperm(m - 1, generator=gen)[:k] for _ in range(n)])  # (n, k) over m - 1 others
    neg = neg + (neg >= pos[:, None]).long()
    diff = p[neg]  # (n, k, D), then in place: one array of this size instead of four
    diff.sub_(s[:, None, :]).abs_().sub_((s - p[pos]).abs()[:, None, :])
    return diff.reshape(n * k, -1)


#: The regulariser weights ``select_lambda`` chooses from; the largest keeps ``w`` at the unlearned ranking.
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def _photo_subset(feats: np.ndarray, photos: np.ndarray, positives: np.ndarray,
                  keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sketches of the photos ``keep``, those photos, and positives re-indexed into them."""
    remap = np.full(len(photos), -1)
    remap[keep] = np.arange(len(keep))
    rows = np.flatnonzero(remap[positives] >= 0)
    return feats[rows], photos[keep], remap[positives[rows]]


def select_lambda(sketch_feats: np.ndarray, photo_feats: np.ndarray, positives: np.ndarray,
                  lambdas: tuple[float, ...] = LAMBDAS, fraction: float = 0.2, seed: int = 0) -> float:
    """The ``lam`` whose SVM, trained on the other training photos, ranks a held-out ``fraction`` of them best
    (acc@1, then mean rank; ties go to the larger ``lam``, nearer the unlearned ranking). So the learned baseline
    is chosen against its own unlearned form on data it was not fitted to."""
    from sbir_core.metrics import true_match_ranks

    positives = np.asarray(positives)
    order = np.random.default_rng(seed).permutation(len(photo_feats))
    n_val = max(2, int(round(fraction * len(photo_feats))))
    fit_s, fit_p, fit_pos = _photo_subset(sketch_feats, photo_feats, positives, np.sort(order[n_val:]))
    val_s, val_p, val_pos = _photo_subset(sketch_feats, photo_feats, positives, np.sort(order[:n_val]))
    diff = pair_differences(fit_s, fit_p, fit_pos, seed=seed)  # the same training pairs for every weight
    best, best_key = max(lambdas), None
    for lam in sorted(lambdas, reverse=True):
        ranks = true_match_ranks(RankSVM(lam=lam, seed=seed).fit_pairs(diff).distances(val_s, val_p), val_pos)
        key = (float((ranks == 1).mean()), -float(ranks.mean()))
        if best_key is None or key > best_key:
            best, best_key = lam, key
    return best


def hog_ranksvm_distances(train: SplitLike, test: SplitLike, render_size: int = 128,
                          svm: RankSVM | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(HOG + L1 nearest-neighbour distances, HOG + rankSVM distances) for ``test``, the SVM trained on ``train``."""
    tr_s, tr_p = hog_features(sketch_grey(train, render_size)), hog_features(photo_grey(train, render_size))
    te_s, te_p = hog_features(sketch_grey(test, render_size)), hog_features(photo_grey(test, render_size))
    plain = np.abs(te_s[:, None, :] - te_p[None]).sum(-1)
    svm = svm or RankSVM()
    svm.fit(tr_s, tr_p, train.positives)
    return plain, svm.distances(te_s, te_p)
