"""Detect a dataset folder's layout and load it; load every dataset folder of a collection."""
from __future__ import annotations

import os
from pathlib import Path

from sbir_core.data.qmul import coordinate_file, load_qmul_v1, load_qmul_v2, v1_name
from sbir_core.data.sketchy import is_sketchy, load_sketchy
from sbir_core.data.split import FGSBIRData
from sbir_core.errors import DataError

FORMATS = ("qmul-v2", "qmul-v1", "sketchy")


def detect_format(root: str | os.PathLike) -> str:
    """``"qmul-v2"`` (``*_Coordinate`` + ``photo/``; also the synthetic data), ``"qmul-v1"`` or ``"sketchy"``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    if coordinate_file(root) is not None:
        return "qmul-v2"
    if v1_name(root) is not None:
        return "qmul-v1"
    if is_sketchy(root):
        return "sketchy"
    hint = ""
    if any(coordinate_file(p) for p in sorted(root.iterdir()) if p.is_dir()):
        hint = " (it holds dataset folders: load one of them, or use load_collection)"
    raise DataError("not a dataset folder: no *_Coordinate pickle (QMUL-V2), no *_sketch_db_train.mat (QMUL-V1), "
                    f"no photo/<class>/ + sketch/<class>/ (Sketchy){hint}", root)


def load_dataset(root: str | os.PathLike) -> FGSBIRData:
    """Load ONE dataset folder, whatever its layout (see :func:`detect_format`)."""
    loader = {"qmul-v2": load_qmul_v2, "qmul-v1": load_qmul_v1, "sketchy": load_sketchy}[detect_format(root)]
    return loader(Path(root))


def dataset_folders(root: str | os.PathLike) -> list[Path]:
    """The sub-folders of ``root`` that hold a dataset, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("folder not found", root)
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            detect_format(child)
        except DataError:
            continue
        found.append(child)
    return found


def load_collection(root: str | os.PathLike) -> dict[str, FGSBIRData]:
    """Load every dataset folder directly under ``root`` (e.g. the synthetic categories), keyed by folder name."""
    folders = dataset_folders(root)
    if not folders:
        raise DataError("no dataset folders inside", root)
    return {folder.name: load_dataset(folder) for folder in folders}
