"""Loaders for the real formats, on tiny fixtures written here in exactly those formats."""
import json
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from sbir_core.data import detect_format, load_collection, load_dataset
from sbir_core.data.safe_pickle import load_pickle
from sbir_core.errors import DataError


def stroke_array(rng, n=12):
    pts = np.zeros((n, 3))
    pts[:, :2] = rng.uniform(40, 220, (n, 2))
    pts[n // 2 - 1, 2] = 1
    pts[-1, 2] = 1
    return pts


def write_photo(path, colour=(200, 50, 50), size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def make_v2(root, keys=None, name="ChairV2", protocol=3):
    """A QMUL-V2 folder in the SketchX layout; photo names with '_' and '-', one worker-id suffix."""
    rng = np.random.default_rng(0)
    keys = keys or ["/train/CHA001-UK_v1_Grey_1", "/train/CHA001-UK_v1_Grey_2", "/train/moszi-d127-_1",
                    "/test/sdich070-laque_2", "/test/sdich070-laque_A1YX741QQSMKPS", "/test/9910-02_1"]
    data = {k: stroke_array(rng) for k in keys}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}_Coordinate", "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    for k in keys:
        write_photo(root / "photo" / f"{k.split('/')[-1].rsplit('_', 1)[0]}.png")
    return data


def test_v2_layout_photo_lookup_and_gallery_order(tmp_path):
    data = make_v2(tmp_path / "ChairV2")
    ds = load_dataset(tmp_path / "ChairV2")
    assert (ds.format, ds.name, ds.meta) == ("qmul-v2", "ChairV2", {})
    assert ds.train.photo_names == ["CHA001-UK_v1_Grey", "moszi-d127-"]
    assert ds.train.positives.tolist() == [0, 0, 1]
    assert ds.test.photo_names == ["sdich070-laque", "9910-02"]
    assert ds.test.positives.tolist() == [0, 0, 1]
    assert len(ds.train) == 3 and ds.test.sketch_keys[1] == "/test/sdich070-laque_A1YX741QQSMKPS"
    np.testing.assert_array_equal(ds.train.vectors[0].points, data["/train/CHA001-UK_v1_Grey_1"])
    rasters = ds.train.sketch_rasters(64)
    assert rasters.shape == (3, 64, 64) and rasters.dtype == np.float32 and 0 < rasters.max() <= 1
    photos = ds.test.photos(48)
    assert photos.shape == (2, 48, 48, 3) and photos.dtype == np.uint8
    assert tuple(photos[0, 10, 10]) == (200, 50, 50)


def test_v2_errors_name_the_file(tmp_path):
    make_v2(tmp_path / "a")
    (tmp_path / "a" / "photo" / "moszi-d127-.png").unlink()
    with pytest.raises(DataError, match=r"moszi-d127-\.png: photo of sketch '/train/moszi-d127-_1' not found"):
        load_dataset(tmp_path / "a")

    make_v2(tmp_path / "b", keys=["/train/x_1", "/valid/y_1", "/test/z_1"])
    with pytest.raises(DataError, match=r"ChairV2_Coordinate: key '/valid/y_1' names no split"):
        load_dataset(tmp_path / "b")

    make_v2(tmp_path / "c")
    (tmp_path / "c" / "ChairV2_Coordinate").write_bytes(b"\x80\x03}q\x00(X\x03")
    with pytest.raises(DataError, match=r"ChairV2_Coordinate: not a readable data pickle"):
        load_dataset(tmp_path / "c")
    assert "\n" not in str(pytest.raises(DataError, load_dataset, tmp_path / "c").value)


def test_bad_sketch_arrays_are_data_errors(tmp_path):
    for bad, problem in [(np.zeros((0, 3)), "empty sketch"), (np.full((4, 3), np.nan), "NaN"),
                         (np.zeros((4, 2)), "shape")]:
        root = tmp_path / problem.replace(" ", "")
        make_v2(root, keys=["/train/a_1", "/test/b_1"])
        with open(root / "ChairV2_Coordinate", "wb") as f:
            pickle.dump({"/train/a_1": bad, "/test/b_1": stroke_array(np.random.default_rng(1))}, f, protocol=3)
        with pytest.raises(DataError, match=problem):
            load_dataset(root)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil_Coordinate"
    path.write_bytes(pickle.dumps({"/train/a_1": Evil()}, protocol=3))
    with pytest.raises(DataError, match="builtins.print is not allowed"):
        load_pickle(path)
    ok = tmp_path / "ok"
    ok.write_bytes(pickle.dumps({"k": [np.arange(3.0), (1, "a")]}, protocol=2))
    value = load_pickle(ok)
    np.testing.assert_array_equal(value["k"][0], np.arange(3.0))


def make_v1(root, name="shoes", n=(5, 3)):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    annotation = {}
    start = 1
    for split, count in zip(("train", "test"), n):
        sketches = np.full((count, 256, 256), 255, np.uint8)
        sketches[:, 100:110, 50:200] = 0  # black lines on white
        edges = rng.integers(200, 256, (count, 256, 256)).astype(np.uint8)
        savemat(root / f"{name}_sketch_db_{split}.mat", {"data": sketches})
        savemat(root / f"{name}_edge_db_{split}.mat", {"data": edges})
        annotation[split] = {"images": [f"{i}.jpg" for i in range(start, start + count)],
                             "sketches": [f"{i}.png" for i in range(start, start + count)],
                             "triplets": [[[i, (i + 1) % count], [(i + 1) % count, (i + 2) % count]]
                                          for i in range(count)]}
        start += count
    (root / f"{name}_annotation.json").write_text(json.dumps(annotation))


def test_v1_layout(tmp_path):
    make_v1(tmp_path / "shoes")
    ds = load_dataset(tmp_path / "shoes")
    assert (ds.format, ds.name) == ("qmul-v1", "shoes")
    assert (len(ds.train), ds.train.n_photos, len(ds.test)) == (5, 5, 3)
    assert ds.train.vectors is None and ds.test.photo_names == ["6", "7", "8"]
    assert ds.train.positives.tolist() == [0, 1, 2, 3, 4]
    assert ds.train.triplets[0].tolist() == [[0, 1], [1, 2]]
    rasters = ds.train.sketch_rasters(256)
    assert rasters[0, 105, 100] == 1.0 and rasters[0, 10, 10] == 0.0  # ink = 1
    photos = ds.test.photos(64)
    assert photos.shape == (3, 64, 64, 3) and (photos[..., 0] == photos[..., 2]).all()


def test_v1_errors(tmp_path):
    make_v1(tmp_path / "a")
    savemat(tmp_path / "a" / "shoes_edge_db_test.mat", {"data": np.zeros((2, 256, 256), np.uint8)})
    with pytest.raises(DataError, match="3 sketches but 2 edge maps"):
        load_dataset(tmp_path / "a")
    make_v1(tmp_path / "b")
    (tmp_path / "b" / "shoes_sketch_db_train.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"shoes_sketch_db_train\.mat: unreadable MATLAB file"):
        load_dataset(tmp_path / "b")


def test_sketchy_class_folders(tmp_path):
    root = tmp_path / "sketchy"
    for cls in ("cat", "dog"):
        (root / "sketch" / cls).mkdir(parents=True)
        for i in range(10):
            write_photo(root / "photo" / cls / f"n0{i}.jpg")
            for k in (1, 2):
                img = Image.new("L", (32, 32), 255)
                img.putpixel((5, 5), 0)
                img.save(root / "sketch" / cls / f"n0{i}-{k}.png")
    ds = load_dataset(root)
    assert ds.format == "sketchy"
    assert (len(ds.train), len(ds.test), ds.test.photo_names) == (36, 4, ["cat/n09", "dog/n09"])
    assert ds.test.categories == ["cat", "cat", "dog", "dog"]
    assert ds.test.sketch_rasters(32)[0, 5, 5] == 1.0


def test_detection_and_collections(tmp_path):
    make_v2(tmp_path / "coll" / "ChairV2")
    make_v1(tmp_path / "coll" / "shoes")
    (tmp_path / "coll" / "notes").mkdir()
    assert detect_format(tmp_path / "coll" / "shoes") == "qmul-v1"
    with pytest.raises(DataError, match="load_collection"):
        load_dataset(tmp_path / "coll")
    assert sorted(load_collection(tmp_path / "coll")) == ["ChairV2", "shoes"]
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing")


def test_dump_pickle_is_readable_and_canonical(tmp_path):
    from sbir_core.data.safe_pickle import dump_pickle

    a = pickle.loads(pickle.dumps(np.arange(6.0).reshape(2, 3)))  # an array with its own dtype object
    dump_pickle({"b": a, "a": np.ones((1, 3))}, tmp_path / "x")
    dump_pickle({"a": np.ones((1, 3)), "b": np.arange(6.0).reshape(2, 3)}, tmp_path / "y")
    assert (tmp_path / "x").read_bytes() == (tmp_path / "y").read_bytes()
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644
    assert list(load_pickle(tmp_path / "x")) == ["a", "b"]
