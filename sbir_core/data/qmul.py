"""Loaders for the QMUL fine-grained datasets (Yu et al., "Sketch Me That Shoe", CVPR 2016; Song et al., ICCV 2017).

* QMUL-Shoe-V2 / Chair-V2 (the SketchX "Coordinate" release): ``<root>/<Name>_Coordinate`` is a pickle (protocol 3)
  of ``dict[key, ndarray (N, 3) float64]`` with keys ``'/train/<photo>_<k>'`` or ``'/test/<photo>_<k>'`` (absolute
  x, y on the 256 frame and the pen state), and ``<root>/photo/<photo>.png`` holds the photos. The photo of a key is
  its last path part without the final ``_<k>`` (photo names themselves contain ``_`` and ``-``; a few ChairV2 keys
  end in a worker id instead of a small integer). The synthetic benchmark uses this layout too, plus a sidecar
  ``<Name>_meta.json``.
* QMUL-Shoe-V1 / Chair-V1: ``<name>_sketch_db_{train,test}.mat`` and ``<name>_edge_db_{train,test}.mat`` (key
  ``data``, uint8 ``(N, 256, 256)``, black lines on white), sketch i pairs with edge map i; optional
  ``<name>_annotation.json`` with sketch and image names and, per sketch, ``[pos, neg]`` photo-index pairs from
  human relative-similarity judgements (0-based).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from sbir_core.data.safe_pickle import load_pickle
from sbir_core.data.sketch import Sketch
from sbir_core.data.split import FGSBIRData, Split
from sbir_core.errors import DataError

SPLITS = ("train", "test")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


# --- QMUL-V2 -----------------------------------------------------------------------------------------------------------
def coordinate_file(root: Path) -> Path | None:
    """The single ``*_Coordinate`` pickle of a V2 folder (None when there is none; DataError when ambiguous)."""
    found = sorted(p for p in root.glob("*_Coordinate") if p.is_file())
    if len(found) > 1:
        raise DataError(f"several *_Coordinate files ({', '.join(p.name for p in found)})", root)
    return found[0] if found else None


def split_of_key(key: str) -> str | None:
    """``'train'`` / ``'test'`` from a key ``'/<split>/<photo>_<k>'`` (the first path part), else None."""
    parts = key.strip("/").split("/")
    return parts[0] if len(parts) >= 2 and parts[0] in SPLITS else None


def photo_of_key(key: str) -> str | None:
    """The photo name of a sketch key: the last path part without its final ``_<k>`` (None if it has no ``_``)."""
    stem = key.split("/")[-1]
    return stem.rsplit("_", 1)[0] if "_" in stem and stem.rsplit("_", 1)[0] else None


def _photo_index(photo_dir: Path) -> dict[str, Path]:
    if not photo_dir.is_dir():
        raise DataError("photo folder not found", photo_dir)
    return {p.stem: p for p in sorted(photo_dir.iterdir()) if p.suffix.lower() in PHOTO_SUFFIXES}


def load_qmul_v2(root: str | Path) -> FGSBIRData:
    """Load a QMUL-V2-layout folder (real Shoe/ChairV2 or one synthetic category)."""
    root = Path(root)
    pickle_path = coordinate_file(root)
    if pickle_path is None:
        raise DataError("no *_Coordinate pickle", root)
    name = pickle_path.name[: -len("_Coordinate")]
    coordinates = load_pickle(pickle_path)
    if not isinstance(coordinates, dict) or not coordinates:
        raise DataError(f"expected a non-empty dict of sketches, got {type(coordinates).__name__}", pickle_path)
    photos = _photo_index(root / "photo")

    per_split: dict[str, list[tuple[str, str, Sketch]]] = {s: [] for s in SPLITS}
    for key, array in coordinates.items():
        if not isinstance(key, str):
            raise DataError(f"sketch key {key!r} is not a string", pickle_path)
        split = split_of_key(key)
        if split is None:
            raise DataError(f"key {key!r} names no split (expected '/train/...' or '/test/...')", pickle_path)
        photo = photo_of_key(key)
        if photo is None:
            raise DataError(f"key {key!r} has no '_<k>' suffix after the photo name", pickle_path)
        if photo not in photos:
            raise DataError(f"photo of sketch {key!r} not found", root / "photo" / f"{photo}.png")
        per_split[split].append((key, photo, Sketch.from_array(array, f"{pickle_path} [{key}]")))

    meta_path = root / f"{name}_meta.json"
    meta = _read_json(meta_path) if meta_path.exists() else {}
    splits = {}
    for split, rows in per_split.items():
        if not rows:
            raise DataError(f"no {split} sketches", pickle_path)
        gallery = list(dict.fromkeys(photo for _, photo, _ in rows))
        index = {p: i for i, p in enumerate(gallery)}
        splits[split] = Split(
            name=split, sketch_keys=[k for k, _, _ in rows], photo_names=gallery,
            positives=np.array([index[p] for _, p, _ in rows]), vectors=[s for _, _, s in rows],
            photo_paths=[photos[p] for p in gallery], source=pickle_path)
    return FGSBIRData("qmul-v2", name, root, splits["train"], splits["test"], meta)


# --- QMUL-V1 -----------------------------------------------------------------------------------------------------------
_V1_PATTERN = re.compile(r"^(?P<name>.+)_sketch_db_train\.mat$")


def v1_name(root: Path) -> str | None:
    """The subset name (``shoes``, ``chairs``, ...) of a V1 folder, or None."""
    names = sorted(m["name"] for p in root.glob("*_sketch_db_train.mat") if (m := _V1_PATTERN.match(p.name)))
    if len(names) > 1:
        raise DataError(f"several V1 subsets ({', '.join(names)})", root)
    return names[0] if names else None


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    if not path.exists():
        raise DataError("file not found", path)
    try:
        data = loadmat(path)["data"]
    except KeyError:
        raise DataError("MATLAB file has no 'data' variable", path) from None
    except Exception as err:
        raise DataError(f"unreadable MATLAB file ({type(err).__name__}: {err})".replace("\n", " "), path) from None
    if data.dtype.kind not in "biuf":  # never an object (cell) array: its elements are not pixels
        raise DataError(f"expected numeric 'data', got dtype {data.dtype}", path)
    if data.ndim != 3 or data.shape[0] == 0:
        raise DataError(f"expected 'data' of shape (N, H, W), got {data.shape}", path)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise DataError("'data' holds NaN or infinite pixels", path)
    return data


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable JSON ({err})".replace("\n", " "), path) from None


def load_qmul_v1(root: str | Path) -> FGSBIRData:
    """Load a QMUL-V1 folder: raster sketches (ink = 1 after inversion) and photo edge maps, paired by index."""
    root = Path(root)
    name = v1_name(root)
    if name is None:
        raise DataError("no <name>_sketch_db_train.mat", root)
    annotation_path = root / f"{name}_annotation.json"
    annotation = _read_json(annotation_path) if annotation_path.exists() else None
    splits = {}
    for split in SPLITS:
        sketch_path = root / f"{name}_sketch_db_{split}.mat"
        sketches, edges = _read_mat(sketch_path), _read_mat(root / f"{name}_edge_db_{split}.mat")
        n = len(sketches)
        if len(edges) != n:
            raise DataError(f"{n} sketches but {len(edges)} edge maps in the {split} split", sketch_path)
        keys, photos, triplets = [str(i) for i in range(n)], [str(i) for i in range(n)], None
        if annotation is not None:
            try:
                part = annotation[split]
                keys = [Path(s).stem for s in part["sketches"]]
                photos = [Path(s).stem for s in part["images"]]
                triplets = [np.asarray(t, dtype=np.int64).reshape(-1, 2) for t in part["triplets"]]
            except (KeyError, TypeError, ValueError) as err:
                raise DataError(f"malformed {split} annotation ({err})", annotation_path) from None
            if not len(keys) == len(photos) == len(triplets) == n:
                raise DataError(f"{split} annotation lists {len(keys)} sketches / {len(photos)} images / "
                                f"{len(triplets)} triplet lists for {n} sketches", annotation_path)
            if any(t.size and (t.min() < 0 or t.max() >= n) for t in triplets):
                raise DataError(f"{split} triplet index out of range 0..{n - 1}", annotation_path)
        splits[split] = Split(
            name=split, sketch_keys=keys, photo_names=photos, positives=np.arange(n),
            raster_array=255 - sketches, photo_array=edges, triplets=triplets,
            source=sketch_path)
    return FGSBIRData("qmul-v1", name, root, splits["train"], splits["test"], {})
