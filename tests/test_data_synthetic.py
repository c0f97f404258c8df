"""The synthetic benchmark: format, determinism, metadata, and statistics in the range of real ChairV2."""
import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from sbir_core.data import load_collection, load_dataset, stroke_statistics
from sbir_core.data.synthetic import CATEGORIES, DRAWERS, ensure_synthetic, generate, writer
from sbir_core.errors import DataError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "tiny", profile="tiny", seed=3)


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_is_qmul_v2_per_category(tiny):
    assert sorted(p.name for p in tiny.iterdir() if p.is_dir()) == sorted(CATEGORIES)
    data = load_collection(tiny)
    for name, ds in data.items():
        assert ds.format == "qmul-v2" and ds.name == name
        assert (ds.train.n_photos, ds.test.n_photos) == (
            (8, 4) if name in ("shoe", "chair") else (4, 2))
        assert all(k.startswith("/train/") for k in ds.train.sketch_keys)
        assert len(ds.train) >= 3 * ds.train.n_photos
        assert ds.meta["category"] == name
        for key in ds.train.sketch_keys + ds.test.sketch_keys:
            info = ds.meta["sketches"][key]
            assert info["category"] == name and 0 <= info["drawer"] < len(DRAWERS)
        photo = ds.meta["photos"][ds.test.photo_names[0]]
        assert photo["split"] == "test" and set(photo["attributes"]) == set(CATEGORIES[name].attributes)
        for box in photo["part_boxes"].values():
            assert 0 <= box[0] <= box[2] <= 256 and 0 <= box[1] <= box[3] <= 256


def test_photos_and_sketches_are_well_formed(tiny):
    ds = load_dataset(tiny / "shoe")
    photos = ds.test.photos(256)
    assert photos.shape == (4, 256, 256, 3) and photos.std() > 10
    stats = stroke_statistics(ds.train.vectors)
    assert stats["longer_side_mean"] == pytest.approx(190, abs=0.01)
    assert max(s.n_strokes for s in ds.train.vectors) <= 15
    for s in ds.train.vectors:
        assert 33 - 1e-6 <= s.points[:, :2].min() and s.points[:, :2].max() <= 223 + 1e-6


def test_same_seed_same_bytes_in_any_process_and_alone(tiny, tmp_path):
    serial = generate(tmp_path / "serial", profile="tiny", seed=3, categories=["chair", "mug"], workers=1)
    parallel = generate(tmp_path / "parallel", profile="tiny", seed=3, categories=["mug", "chair"], workers=2)
    for category in ("chair", "mug"):
        assert digest(serial / category) == digest(parallel / category) == digest(tiny / category)
    other = generate(tmp_path / "other", profile="tiny", seed=4, categories=["mug"], workers=1)
    assert digest(other / "mug") != digest(tiny / "mug")


def test_generate_refuses_to_clobber_and_unknown_names(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate(tmp_path / "full", profile="tiny", categories=["shoe"])
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(DataError, match="unknown categories"):
        generate(tmp_path / "new", profile="tiny", categories=["spaceship"])
    with pytest.raises(DataError, match="unknown profile"):
        generate(tmp_path / "new", profile="huge")
    assert not (tmp_path / "new").exists()


def test_ensure_synthetic_reuses_a_complete_collection_and_regenerates_a_stale_one(tiny, monkeypatch):
    calls = []
    monkeypatch.setattr(writer, "generate", lambda out, **kw: calls.append((out, kw)) or out)
    assert ensure_synthetic("tiny", seed=3, root=tiny) == tiny and calls == []
    assert ensure_synthetic("tiny", seed=4, root=tiny) == tiny  # another seed: regenerated in place
    assert calls == [(tiny, {"profile": "tiny", "seed": 4, "progress": True, "overwrite": True})]


@pytest.mark.parametrize("seed, index", [(3, 33), (4, 20)])
def test_small_closed_loops_survive_a_large_pen_gap(tmp_path, seed, index):
    """Seeds 3 and 4 of the book profile drew a clock whose gap left out a whole small loop (an empty stroke)."""
    profile = writer.PROFILES["book"]
    job = writer._Job(str(tmp_path), "clock", index, "train", writer._category_seed(seed, "clock"), profile)
    _, coordinates, _, _ = writer._make_photo(job)
    assert all(len(points) >= 2 for points in coordinates.values())


def _generate_tiny(out: Path, seed: int) -> Path:
    return generate(out, profile="tiny", seed=seed, workers=1, progress=False)


def test_every_seed_generates(tmp_path):
    """Eight seeds, two at a time (each generation is one process; forked, so without a second import of torch)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        outs = list(pool.map(_generate_tiny, [tmp_path / f"s{seed}" for seed in range(8)], range(8)))
    assert all((out / "collection.json").is_file() for out in outs)


def test_ensure_synthetic_never_replaces_a_folder_it_did_not_write(tmp_path):
    user = tmp_path / "ChairV2"
    (user / "photo").mkdir(parents=True)
    (user / "ChairV2_Coordinate").write_bytes(b"the user's real data")
    with pytest.raises(DataError, match="not a synthetic collection written by sbir_core"):
        ensure_synthetic("tiny", seed=0, root=user)
    assert (user / "ChairV2_Coordinate").read_bytes() == b"the user's real data"
    (user / "collection.json").write_text("{broken")
    with pytest.raises(DataError, match=str(user)):
        ensure_synthetic("tiny", seed=0, root=user)
    assert (user / "ChairV2_Coordinate").read_bytes() == b"the user's real data"
