"""Restricted (un)pickling for the SketchX ``<Name>_Coordinate`` files.

The QMUL-Shoe/Chair-V2 vector sketches ship as a Python pickle (protocol 3) of ``dict[str, ndarray (N, 3) float64]``.
A pickle can run arbitrary code when loaded, and these files come from the internet, so :func:`load_pickle` only
lets plain containers and numeric NumPy arrays through, rebuilt by this module from their bytes after their dtype,
shape and size are checked; any other global, an object dtype, or a reconstruction in a form numpy does not write
makes it raise :class:`DataError`.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sbir_core.errors import DataError
from sbir_core.runtime import atomic_path

PROTOCOL = 3  # the protocol of the public ChairV2_Coordinate; fixed so the same data gives the same bytes
MAX_BYTES = 2 << 30  # the largest pickle read, and the largest array built from one
#: Array element kinds that may be loaded: booleans, integers, floats and complex numbers. Never objects (``O``): an
#: object array built from raw bytes holds pointers chosen by the file, and reading it corrupts memory.
ARRAY_KINDS = "biufc"


class _ArrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: accepted only as the first argument of ``_reconstruct``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("numpy.ndarray may not be called directly (only numpy's own reconstruction)")


class _Dtype:
    """A dtype as a pickle describes it, ``dtype(spec, align, copy)`` then ``__setstate__``; checked in ``build``."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        self.spec, self.state = spec, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.dtype:
        if not isinstance(self.spec, str):
            raise pickle.UnpicklingError(f"dtype spec {self.spec!r} is not a string")
        dtype = np.dtype(self.spec)
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"dtype {self.spec!r} is not allowed (only {ARRAY_KINDS} kinds)")
        state = self.state
        if state is not None:  # (version, byte order, subarray, names, fields, elsize, alignment, flags)
            if not (isinstance(state, tuple) and len(state) >= 5 and state[2] is None and state[3] is None
                    and state[4] is None and state[1] in ("<", ">", "|", "=")):
                raise pickle.UnpicklingError("dtype state with fields or a sub-array is not allowed")
            if state[1] in ("<", ">"):
                dtype = dtype.newbyteorder(state[1])
        return dtype


class _Array:
    """An array as numpy pickles it, ``_reconstruct(ndarray, (0,), b'b')`` then ``__setstate__``."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.ndarray:
        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _Dtype):
            raise pickle.UnpicklingError("array dtype is not a dtype")
        dtype = dtype.build()
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
        if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError(f"array data is a {type(raw).__name__}, not bytes")
        n = math.prod(shape)
        if n * dtype.itemsize != len(raw) or len(raw) > MAX_BYTES:
            raise pickle.UnpicklingError(f"array of shape {shape} and {dtype} does not match its {len(raw)} bytes")
        return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _ArrayClass or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("array reconstruction in a form numpy does not write")
    return _Array()


def _scalar(dtype: Any, raw: Any) -> Any:
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("scalar without a dtype")
    dt = dtype.build()
    raw = raw.encode("latin1") if isinstance(raw, str) else raw
    if not isinstance(raw, bytes) or len(raw) != dt.itemsize:
        raise pickle.UnpicklingError(f"scalar of {dt} does not match its data")
    return np.frombuffer(raw, dtype=dt)[0]


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 2 pickles use it for bytes: latin-1 text to bytes, nothing else."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin-1 text")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _ArrayClass,
    ("numpy", "dtype"): _Dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _encode,  # bytes in protocol-2 pickles written by Python 2
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # pickles name one or the other
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _scalar


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def _finish(obj: Any, done: dict[int, Any]) -> Any:
    """Replace the array stand-ins by checked arrays, in plain containers only."""
    key = id(obj)
    if key in done:
        return done[key]
    if isinstance(obj, _Array):
        out: Any = obj.build()
    elif isinstance(obj, (_Dtype, _ArrayClass)) or obj is _ArrayClass:
        raise pickle.UnpicklingError("a bare dtype or array class is not data")
    elif isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, collections.OrderedDict) else None
        if out is None:
            raise pickle.UnpicklingError(f"container {type(obj).__name__} is not allowed")
        done[key] = out
        for k, v in obj.items():
            out[_finish(k, done)] = _finish(v, done)
        return out
    elif type(obj) in (list, tuple, set, frozenset):
        out = type(obj)(_finish(v, done) for v in obj)
    elif type(obj) in (str, bytes, bytearray, int, float, complex, bool, type(None)) or isinstance(obj, np.generic):
        out = obj
    else:
        raise pickle.UnpicklingError(f"{type(obj).__name__} is not allowed in a data pickle")
    done[key] = out
    return out


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle that may hold only dicts, lists, tuples, strings, numbers and numeric NumPy arrays.

    The whole file is read first (at most ``MAX_BYTES``), so a length declared inside it cannot make the reader
    allocate more than the file holds; arrays are rebuilt from their bytes only after their dtype (never ``object``),
    shape and size agree. Anything else raises :class:`DataError` with one line naming the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataError(f"{size} bytes is larger than a data pickle may be ({MAX_BYTES})", path)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as err:
        raise DataError(f"unreadable ({err.strerror or type(err).__name__})", path) from None
    try:
        return _finish(_RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load(), {})
    except Exception as err:  # truncated, corrupt, a forbidden global or dtype, a mismatched size
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
