"""Every loader against hostile and broken files: exit status 2 and one line naming the file, nothing written.

The files come from the internet, so they are treated as an attacker's: pickles that build object arrays from raw
bytes (pointers of the attacker's choosing), call other globals, or declare sizes far beyond their data; MATLAB files
with cell arrays; and the ordinary breakage of truncated files, NaN or infinite points, empty strokes and missing
photos. Each case runs ``sbir data info``; those that would corrupt memory run it in a child process, so that a
crash (a segmentation fault) fails the test instead of killing the test run."""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from test_data_loaders import make_v1, make_v2, stroke_array, write_photo


KEY = "/train/CHA001-UK_v1_Grey_1"  # a key of make_v2's, whose photo exists


class ObjectArrayFromBytes:
    """``np.ndarray((4,), dtype('O'), buffer=bytes)``: element pointers chosen by the file (issue 9)."""

    def __reduce__(self):
        return (np.ndarray, ((4,), np.dtype("O"), b"\x41" * 32))


class CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def huge_declared_array(good: dict) -> bytes:
    """A dict holding an array pickled by numpy, its shape patched to 2**31 - 1 rows with the data of 3 elements."""
    raw = pickle.dumps({**good, KEY: np.zeros(3)}, protocol=2)
    assert raw.count(b"K\x03\x85") == 1
    return raw.replace(b"K\x03\x85", b"J\xff\xff\xff\x7f\x85")


V2_PICKLES = {
    "object array built from bytes": lambda good: pickle.dumps([ObjectArrayFromBytes()], protocol=3),
    "object array from bytes as a sketch": lambda good: pickle.dumps({**good, KEY: [ObjectArrayFromBytes()]},
                                                                     protocol=3),
    "object array in a dict": lambda good: pickle.dumps({**good, KEY: np.array([1, "x"], dtype=object)}, protocol=3),
    "structured dtype with an object field": lambda good: pickle.dumps(
        {**good, KEY: np.zeros(2, dtype=[("x", "f8"), ("o", "O")])}, protocol=3),
    "a call of os.system": lambda good: pickle.dumps({**good, KEY: CallsSystem()}, protocol=3),
    "truncated": lambda good: pickle.dumps({**good, KEY: stroke_array(np.random.default_rng(0))}, protocol=3)[:40],
    "not a pickle": lambda good: b"GIF89a this is not a pickle at all",
    "empty file": lambda good: b"",
    "strings instead of points": lambda good: pickle.dumps({**good, KEY: np.array(["a", "b", "c"])}, protocol=3),
    "wrong shape (N, 2)": lambda good: pickle.dumps({**good, KEY: np.zeros((5, 2))}, protocol=3),
    "NaN points": lambda good: pickle.dumps({**good, KEY: np.full((4, 3), np.nan)}, protocol=3),
    "infinite points": lambda good: pickle.dumps({**good, KEY: np.array([[0, 0, 0], [np.inf, 1, 1.0]])}, protocol=3),
    "empty sketch": lambda good: pickle.dumps({**good, KEY: np.zeros((0, 3))}, protocol=3),
    "a list, not a dict": lambda good: pickle.dumps([1, 2, 3], protocol=3),
    "huge declared size": huge_declared_array,
    "deep nesting": lambda good: b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".",
}


#: Cases that corrupt memory if the unpickler lets them through: these run in a child process, so a crash (a
#: segmentation fault) fails the test instead of the test run. The rest run in-process, which is 20 times faster.
IN_A_CHILD = {"object array built from bytes", "object array from bytes as a sketch"}


def _info_in_process(root: Path) -> tuple[int, str]:
    from sbir_core.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["data", "info", str(root)])
    return code, err.getvalue()


def _child(root: Path, conn) -> None:
    conn.send(_info_in_process(root))
    conn.close()


def run_info(root: Path, child: bool) -> tuple[int, str]:
    """``sbir data info ROOT``: (exit status, stderr). ``child`` runs it in a forked process (with the test process's
    modules already imported, so in a fraction of a second), where a segmentation fault ends only the child."""
    if not child:
        return _info_in_process(root)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(root, send))
    proc.start()
    send.close()
    try:
        result = receive.recv() if receive.poll(120) else None
    except EOFError:  # the child ended without a word: it crashed
        result = None
    proc.join(10)
    assert proc.exitcode == 0 and result is not None, f"the child crashed (exit code {proc.exitcode})"
    return result


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_refused(root: Path, names: str, child: bool = False) -> None:
    before = listing(root)
    code, stderr = run_info(root, child)
    assert code == 2, (code, stderr[-500:])
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and names in lines[0], stderr
    assert listing(root) == before, "nothing may be written or changed"


@pytest.mark.parametrize("case", sorted(V2_PICKLES))
def test_hostile_v2_coordinate_pickles(tmp_path, case):
    root = tmp_path / "ChairV2"
    good = make_v2(root)
    (root / "ChairV2_Coordinate").write_bytes(V2_PICKLES[case](good))
    assert_refused(root, "ChairV2_Coordinate", child=case in IN_A_CHILD)


def test_missing_photo_and_unreadable_coordinates(tmp_path):
    root = tmp_path / "ChairV2"
    make_v2(root)
    photo = next((root / "photo").iterdir())
    photo.unlink()
    assert_refused(root, photo.stem)
    make_v2(tmp_path / "B")
    coords = tmp_path / "B" / "ChairV2_Coordinate"
    coords.unlink()
    coords.mkdir()  # a folder where the file should be: no dataset is recognised there, and the error names it
    assert_refused(tmp_path / "B", str(tmp_path / "B"))


V1_MATS = {
    "cell array (object dtype)": lambda: {"data": np.array([[np.zeros(3)], [np.ones(2)]], dtype=object)},
    "wrong dtype (strings)": lambda: {"data": np.array(["abc", "def"])},
    "wrong shape (2-D)": lambda: {"data": np.zeros((5, 256), np.uint8)},
    "no data variable": lambda: {"other": np.zeros((5, 256, 256), np.uint8)},
    "NaN pixels": lambda: {"data": np.full((5, 32, 32), np.nan)},
}


@pytest.mark.parametrize("case", sorted(V1_MATS))
def test_hostile_v1_mat_files(tmp_path, case):
    root = tmp_path / "shoes"
    make_v1(root)
    savemat(root / "shoes_sketch_db_train.mat", V1_MATS[case]())
    assert_refused(root, "shoes_sketch_db_train.mat")


def test_truncated_v1_mat_and_annotation(tmp_path):
    root = tmp_path / "shoes"
    make_v1(root)
    mat = root / "shoes_edge_db_test.mat"
    mat.write_bytes(mat.read_bytes()[:300])
    assert_refused(root, "shoes_edge_db_test.mat")
    make_v1(tmp_path / "b")
    (tmp_path / "b" / "shoes_annotation.json").write_text('{"train": ')
    assert_refused(tmp_path / "b", "shoes_annotation.json")


def make_sketchy(root: Path, content) -> None:
    for cls in ("cat", "dog"):
        for i in range(3):
            write_photo(root / "photo" / cls / f"n0{i}.jpg")
    (root / "sketchy_all.pickle").write_bytes(pickle.dumps(content, protocol=3))


SKETCHY = {
    "object array": lambda: (["cat/n00-1"], [], {}, {"cat/n00-1": np.array([None, 1], dtype=object)}),
    "wrong structure": lambda: {"not": "a tuple"},
    "NaN points": lambda: (["cat/n00-1"], [], {}, {"cat/n00-1": np.full((3, 3), np.nan)}),
    "missing coordinates": lambda: (["cat/n00-1"], [], {}, {}),
}


@pytest.mark.parametrize("case", sorted(SKETCHY))
def test_hostile_sketchy_pickles(tmp_path, case):
    make_sketchy(tmp_path / "sketchy", SKETCHY[case]())
    assert_refused(tmp_path / "sketchy", "sketchy_all.pickle")
