"""PyTorch datasets over a :class:`~sbir_core.data.split.Split`: triplets, progressive episodes, few-shot tasks.

Everything is rendered once, up front, at the requested input size (sketches ink = 1, one channel; photos RGB in
[0, 1], three channels), so ``__getitem__`` only indexes tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from sbir_core.data.render import progressive_rasters
from sbir_core.data.split import FGSBIRData, Split
from sbir_core.errors import DataError


def sketch_tensor(split: Split, size: int, indices: np.ndarray | None = None) -> torch.Tensor:
    """``(n, 1, size, size)`` float32 sketches, ink = 1."""
    return torch.from_numpy(split.sketch_rasters(size, indices))[:, None]


def photo_tensor(split: Split, size: int, indices: np.ndarray | None = None) -> torch.Tensor:
    """``(m, 3, size, size)`` float32 photos in [0, 1]."""
    return torch.from_numpy(split.photos(size, indices)).permute(0, 3, 1, 2).float().div_(255)


class TripletDataset(Dataset):
    """``(anchor sketch, its photo, a negative photo)`` per sketch (Yu et al., CVPR 2016).

    The negative is drawn uniformly from the split's OTHER photos: the official Baseline_FGSBIR sampler takes the
    photo of a random other sketch, which is the positive itself whenever that sketch shows the same photo. Draws
    come from a generator seeded with ``seed``; :meth:`set_epoch` reseeds it (``seed``, epoch) for reproducible
    epochs with any number of loader workers.
    """

    def __init__(self, split: Split, size: int = 64, seed: int = 0) -> None:
        if split.n_photos < 2:
            raise DataError(f"{split.name} split has {split.n_photos} photo; triplets need at least 2", split.source)
        self.sketches = sketch_tensor(split, size)
        self.photos = photo_tensor(split, size)
        self.positives = torch.from_numpy(split.positives)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self._negatives = self.draw_negatives(self.positives.numpy(), len(self.photos),
                                              np.random.default_rng([self.seed, epoch]))

    @staticmethod
    def draw_negatives(positives: np.ndarray, n_photos: int, rng: np.random.Generator) -> np.ndarray:
        """One negative per sketch, uniform over the photos other than its positive."""
        return (positives + rng.integers(1, n_photos, len(positives))) % n_photos

    def __len__(self) -> int:
        return len(self.sketches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sketches[i], self.photos[self.positives[i]], self.photos[int(self._negatives[i])]


class ProgressiveDataset(Dataset):
    """Every step of one sketch being drawn (Bhunia et al., CVPR 2020): ``(steps (T, 1, s, s), photo index)``.

    Steps come from :func:`~sbir_core.data.render.progressive_rasters` (``schedule`` "points", "strokes" or
    "official17"); they are stored as uint8 to keep T renderings per sketch small. ``self.photos`` is the gallery.
    """

    def __init__(self, split: Split, steps: int = 20, size: int = 64, schedule: str = "points") -> None:
        if split.vectors is None:
            raise DataError(f"{split.name} split has raster sketches only; progressive steps need vectors", split.source)
        rasters = progressive_rasters(split.vectors, steps=steps, size=size, schedule=schedule)
        self.steps = rasters.mul_(255).round_().to(torch.uint8)
        self.photos = photo_tensor(split, size)
        self.positives = torch.from_numpy(split.positives)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.steps[i].float().div_(255).unsqueeze(1), int(self.positives[i])


@dataclass
class Task:
    """A few-shot task (Bhunia et al., ECCV 2022): adapt on ``support``, then retrieve ``query`` in ``gallery``."""

    name: str
    support_sketches: torch.Tensor  # (k, 1, s, s)
    support_photos: torch.Tensor  # (k, 3, s, s): each support sketch's own photo
    query_sketches: torch.Tensor  # (q, 1, s, s)
    query_positives: torch.Tensor  # (q,) index into gallery
    gallery: torch.Tensor  # (m, 3, s, s)


class FewShotTasks:
    """Tasks per group: per CATEGORY of a collection (``by="category"``: support from the category's train split,
    queries = its test sketches, gallery = its test photos, as the Adaptive FG-SBIR unseen-class protocol) or per
    DRAWER of one synthetic dataset (``by="drawer"``: support = k train sketches of that drawer, queries = that
    drawer's test sketches, gallery = all test photos).

    ``task(name, rng)`` draws a fresh support set; iterating yields one task per group with the generator seeded by
    ``seed``.
    """

    def __init__(self, data: FGSBIRData | Mapping[str, FGSBIRData], by: str = "category", k: int = 5, size: int = 64,
                 seed: int = 0) -> None:
        self.k, self.size, self.seed = k, size, seed
        self._groups: dict[str, tuple[Split, np.ndarray, Split, np.ndarray]] = {}
        if by == "category":
            if isinstance(data, FGSBIRData):
                raise DataError("by='category' needs a collection (dict name -> dataset), e.g. load_collection(root)")
            for name in sorted(data):
                ds = data[name]
                self._groups[name] = (ds.train, np.arange(len(ds.train)), ds.test, np.arange(len(ds.test)))
        elif by == "drawer":
            if not isinstance(data, FGSBIRData) or "sketches" not in data.meta:
                raise DataError("by='drawer' needs one synthetic dataset (drawer ids are in its metadata)")
            drawer = {k: v["drawer"] for k, v in data.meta["sketches"].items()}
            tr = np.array([drawer[k] for k in data.train.sketch_keys])
            te = np.array([drawer[k] for k in data.test.sketch_keys])
            for d in sorted(set(tr) & set(te)):
                self._groups[f"drawer{d}"] = (data.train, np.flatnonzero(tr == d), data.test, np.flatnonzero(te == d))
        else:
            raise ValueError(f"by must be 'category' or 'drawer', got {by!r}")
        short = [name for name, (_, support, _, _) in self._groups.items() if len(support) < k]
        if short:
            raise DataError(f"groups with fewer than k={k} training sketches: {', '.join(short)}")
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def names(self) -> list[str]:
        return list(self._groups)

    def _rendered(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        key = id(split)
        if key not in self._cache:
            self._cache[key] = (sketch_tensor(split, self.size), photo_tensor(split, self.size))
        return self._cache[key]

    def task(self, name: str, rng: np.random.Generator) -> Task:
        train, pool, test, queries = self._groups[name]
        chosen = rng.choice(pool, size=self.k, replace=False)
        train_sk, train_ph = self._rendered(train)
        test_sk, test_ph = self._rendered(test)
        return Task(name, train_sk[chosen], train_ph[train.positives[chosen]], test_sk[queries],
                    torch.from_numpy(test.positives[queries]), test_ph)

    def __iter__(self) -> Iterator[Task]:
        rng = np.random.default_rng(self.seed)
        for name in self._groups:
            yield self.task(name, rng)

    def __len__(self) -> int:
        return len(self._groups)
