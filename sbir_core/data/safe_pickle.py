"""Restricted (un)pickling for the SketchX ``<Name>_Coordinate`` files.

The QMUL-Shoe/Chair-V2 vector sketches ship as a Python pickle (protocol 3) of ``dict[str, ndarray (N, 3) float64]``.
A pickle can run arbitrary code when loaded, and these files come from the internet, so :func:`load_pickle` only
lets plain containers and NumPy arrays through; any other global makes it raise :class:`DataError`.
"""
from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sbir_core.errors import DataError
from sbir_core.runtime import atomic_path

PROTOCOL = 3  # the protocol of the public ChairV2_Coordinate; fixed so the same data gives the same bytes

_NUMPY_CORE = "numpy._core" if hasattr(np, "_core") else "numpy.core"
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # pickles name one or the other
    _multiarray = __import__(f"{_NUMPY_CORE}.multiarray", fromlist=["_reconstruct"])
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar
_ALLOWED[("_codecs", "encode")] = __import__("codecs").encode  # bytes in protocol-2 pickles written by Python 2


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle that may hold only dicts, lists, tuples, strings, numbers and NumPy arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except Exception as err:  # truncated, corrupt, or a forbidden global
        raise DataError(f"not a readable data pickle ({type(err).__name__}: {err})".replace("\n", " "), path) from None


def _canonical_array(value: Any) -> Any:
    """A copy whose dtype is NumPy's canonical instance. Arrays unpickled elsewhere (e.g. in a worker process) carry
    their own dtype objects, and pickle's memo would then write the same data as different bytes."""
    if not isinstance(value, np.ndarray):
        return value
    out = np.empty(value.shape, dtype=np.dtype(value.dtype.str))
    out[...] = value
    return out


def dump_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` atomically with the fixed :data:`PROTOCOL`; a dict is written with sorted keys and its array
    values in canonical form, so equal data give equal bytes."""
    if isinstance(obj, dict):
        obj = {k: _canonical_array(obj[k]) for k in sorted(obj)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=PROTOCOL)
        tmp.chmod(0o644)  # a data file, readable by all (the temporary file is created private)
