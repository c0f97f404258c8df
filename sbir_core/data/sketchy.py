"""Loader for Sketchy (Sangkloy et al., SIGGRAPH 2016) in the class-folder layout used for category-level FG-SBIR.

Layout: ``<root>/photo/<class>/<photo_id>.(jpg|png)`` and ``<root>/sketch/<class>/<photo_id>-<n>.png`` (raster
sketches, black lines on white). Optional ``<root>/sketchy_all.pickle``, the preprocessed tuple of the Adaptive
FG-SBIR code (Bhunia et al., ECCV 2022): ``(train_keys, test_keys, negative_dict, coordinates)`` with keys
``'<class>/<photo_id>-<n>'`` and ``(N, 3)`` vectors on a 640 x 480 canvas; when present it fixes the split and the
sketches are vectors, mapped to the 256 frame as the official code does (x / 640 * 256, y / 480 * 256; anisotropic).
Without it, the sketch PNGs are used and the split is by photo: within each class (photos in sorted order) every
tenth photo, starting with the tenth, and all its sketches are test, the rest train.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sbir_core.data.qmul import PHOTO_SUFFIXES
from sbir_core.data.safe_pickle import load_pickle
from sbir_core.data.sketch import Sketch
from sbir_core.data.split import FGSBIRData, Split
from sbir_core.errors import DataError

PICKLE = "sketchy_all.pickle"
TEST_EVERY = 10


def is_sketchy(root: Path) -> bool:
    photo = root / "photo"
    return photo.is_dir() and any(p.is_dir() for p in photo.iterdir()) and (
        (root / "sketch").is_dir() or (root / PICKLE).is_file())


def _photo_of(key: str) -> str:
    """``'<class>/<photo_id>-<n>'`` -> ``'<class>/<photo_id>'``."""
    cls, stem = key.split("/")[-2:]
    return f"{cls}/{stem.rsplit('-', 1)[0]}"


def load_sketchy(root: str | Path) -> FGSBIRData:
    """Load a Sketchy folder (all classes in one dataset; ``Split.categories`` names each sketch's class)."""
    root = Path(root)
    photos = {f"{p.parent.name}/{p.stem}": p for p in sorted((root / "photo").glob("*/*"))
              if p.suffix.lower() in PHOTO_SUFFIXES}
    if not photos:
        raise DataError("no photos under photo/<class>/", root)
    pickle_path = root / PICKLE
    vectors: dict[str, Sketch] | None = None
    if pickle_path.is_file():
        content = load_pickle(pickle_path)
        if not (isinstance(content, (tuple, list)) and len(content) == 4 and isinstance(content[3], dict)):
            raise DataError("expected a tuple (train_keys, test_keys, negative_dict, coordinates)", pickle_path)
        keys = {"train": list(content[0]), "test": list(content[1])}
        vectors = {}
        for key in keys["train"] + keys["test"]:
            if key not in content[3]:
                raise DataError(f"sketch {key!r} has no coordinates", pickle_path)
            sketch = Sketch.from_array(content[3][key], f"{pickle_path} [{key}]")
            points = sketch.points.copy()
            points[:, :2] *= np.array([256 / 640, 256 / 480])
            vectors[key] = Sketch(points)
        files = None
    else:
        files = {f"{p.parent.name}/{p.stem}": p for p in sorted((root / "sketch").glob("*/*.png"))}
        if not files:
            raise DataError("no sketches under sketch/<class>/", root)
        test_photos = set()
        for cls in sorted({k.split("/")[0] for k in photos}):
            ids = sorted(k for k in photos if k.startswith(cls + "/"))
            test_photos.update(ids[TEST_EVERY - 1:: TEST_EVERY])
        keys = {"train": [k for k in files if _photo_of(k) not in test_photos],
                "test": [k for k in files if _photo_of(k) in test_photos]}
    splits = {}
    for split, split_keys in keys.items():
        if not split_keys:
            raise DataError(f"no {split} sketches", root)
        for key in split_keys:
            if _photo_of(key) not in photos:
                raise DataError(f"photo of sketch {key!r} not found", root / "photo" / f"{_photo_of(key)}.jpg")
        gallery = list(dict.fromkeys(_photo_of(k) for k in split_keys))
        index = {p: i for i, p in enumerate(gallery)}
        splits[split] = Split(
            name=split, sketch_keys=split_keys, photo_names=gallery,
            positives=np.array([index[_photo_of(k)] for k in split_keys]),
            vectors=None if vectors is None else [vectors[k] for k in split_keys],
            raster_paths=None if files is None else [files[k] for k in split_keys],
            photo_paths=[photos[p] for p in gallery], categories=[k.split("/")[0] for k in split_keys],
            source=root)
    return FGSBIRData("sketchy", root.name, root, splits["train"], splits["test"], {})
