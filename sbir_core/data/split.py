"""The containers every loader returns: :class:`FGSBIRData` with a ``train`` and a ``test`` :class:`Split`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sbir_core.data.render import render_sketches
from sbir_core.data.sketch import Sketch
from sbir_core.errors import DataError


def read_photo(path: Path, size: int) -> np.ndarray:
    """One photo as ``(size, size, 3)`` uint8 RGB (bilinear resize); a missing or corrupt file raises DataError."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError("photo not found", path) from None
    except OSError as err:
        raise DataError(f"unreadable image ({err})".replace("\n", " "), path) from None


def edge_maps(photos: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """RGB photos ``(m, S, S, 3)`` uint8 as edge maps in the same layout: black 1-px Canny edges on white, the photo
    input of Sketch Me That Shoe (Yu et al., CVPR 2016, Sec. 3.1, which used Edge Boxes' structured edges) and of
    QMUL-Shoe-V1's photos. ``sigma``: Canny's Gaussian width in pixels (default ``S / 128``: 1 px at 128 px)."""
    from skimage.feature import canny

    photos = np.asarray(photos)
    if photos.ndim != 4 or photos.shape[-1] != 3 or photos.dtype != np.uint8:
        raise ValueError(f"edge_maps needs (m, S, S, 3) uint8 photos, got {photos.shape} {photos.dtype}")
    sigma = photos.shape[1] / 128 if sigma is None else sigma
    grey = photos.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
    edges = np.stack([canny(g, sigma=sigma) for g in grey])
    return np.repeat(np.where(edges, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(n, H, W)`` or ``(n, H, W, C)`` float images with area averaging (bilinear when enlarging)."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    mode = "area" if size < images.shape[1] else "bilinear"
    t = F.interpolate(t, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    t = t[:, 0] if images.ndim == 3 else t.permute(0, 2, 3, 1)
    return t.numpy()


@dataclass
class Split:
    """One split of an FG-SBIR dataset: sketches, the gallery of their photos, and which photo each sketch shows.

    ``photo_names`` are the split's unique photos in order of first appearance (the retrieval gallery, as in the
    official evaluation code); ``positives[i]`` indexes the photo of sketch ``i``. Photos come either from files
    (``photo_paths``) or from an in-memory array (``photo_array``, e.g. QMUL-V1 edge maps); sketches are vectors
    (``vectors``) or, for raster-only datasets, a uint8 ``raster_array`` (ink = 255, background 0) or image files
    ``raster_paths`` (black lines on white, inverted when read).
    """

    name: str
    sketch_keys: list[str]
    photo_names: list[str]
    positives: np.ndarray
    vectors: list[Sketch] | None = None
    photo_paths: list[Path] | None = None
    photo_array: np.ndarray | None = None
    raster_array: np.ndarray | None = None
    raster_paths: list[Path] | None = None
    categories: list[str] | None = None  # per sketch, for multi-category datasets (Sketchy)
    triplets: list[np.ndarray] | None = None  # per sketch (n, 2) [pos, neg] photo indices (QMUL-V1 annotation)
    source: Path | None = None

    def __post_init__(self) -> None:
        self.positives = np.asarray(self.positives, dtype=np.int64)
        if len(self.positives) != len(self.sketch_keys):
            raise DataError(f"{self.name}: {len(self.sketch_keys)} sketches but {len(self.positives)} positives",
                            self.source)
        if len(self.sketch_keys) == 0:
            raise DataError(f"{self.name} split has no sketches", self.source)
        if sum(x is not None for x in (self.vectors, self.raster_array, self.raster_paths)) != 1:
            raise ValueError("a Split needs exactly one of vectors, raster_array and raster_paths")
        if (self.photo_paths is None) == (self.photo_array is None):
            raise ValueError("a Split needs exactly one of photo_paths and photo_array")

    def __len__(self) -> int:
        return len(self.sketch_keys)

    @property
    def n_photos(self) -> int:
        return len(self.photo_names)

    def sketch_rasters(self, size: int = 256, indices: Sequence[int] | None = None) -> np.ndarray:
        """``(n, size, size)`` float32 in [0, 1], INK = 1 and background 0 (see :mod:`sbir_core.data.render`)."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.vectors is not None:
            return render_sketches([self.vectors[i] for i in idx], size=size).numpy()
        if self.raster_paths is not None:
            return np.stack([255 - read_photo(self.raster_paths[i], size)[..., 0] for i in idx]).astype(np.float32) / 255
        return _resize_stack(self.raster_array[idx].astype(np.float32) / 255, size)

    def photos(self, size: int = 256, indices: Sequence[int] | None = None) -> np.ndarray:
        """``(m, size, size, 3)`` uint8 RGB photos of the gallery (QMUL-V1: edge maps repeated over RGB)."""
        idx = np.arange(self.n_photos) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.photo_paths is not None:
            out = np.empty((len(idx), size, size, 3), dtype=np.uint8)
            for row, i in enumerate(idx):
                out[row] = read_photo(self.photo_paths[i], size)
            return out
        images = self.photo_array[idx]
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, axis=-1)
        return np.clip(np.round(_resize_stack(images.astype(np.float32), size)), 0, 255).astype(np.uint8)


@dataclass
class FGSBIRData:
    """A dataset: its ``format`` ("qmul-v2", "qmul-v1", "sketchy"), ``name``, ``root``, sidecar ``meta``, two splits."""

    format: str
    name: str
    root: Path
    train: Split
    test: Split
    meta: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"FGSBIRData({self.format!r}, {self.name!r}: train {len(self.train)} sketches / "
                f"{self.train.n_photos} photos, test {len(self.test)} / {self.test.n_photos})")
