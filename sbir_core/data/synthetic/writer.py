"""Write the synthetic FG-SBIR benchmark: one QMUL-V2-layout folder per category, plus sidecar metadata.

Per category ``<out>/<category>/``:

* ``photo/<category>_<i:05d>.png``: RGB photos (256 px, PNG with fixed settings: zlib level 3, no metadata);
* ``<category>_Coordinate``: pickle (protocol 3) of ``dict['/<split>/<photo>_<k>', float64 (N, 3)]``, exactly the
  ChairV2 format (absolute x, y on the 256 frame, pen = 1 on the last point of a stroke), sorted keys;
* ``<category>_meta.json``: per photo its split, attributes and part boxes (in the photo's pixels and, for the
  undistorted instance, in the normalised sketch frame); per sketch its drawer and category and the boxes of the
  parts it drew (sketch frame); the drawer styles and the attribute schema.

Profiles (photos per category, train / test; 3 sketches per photo, sometimes 4 or 5, each by a different drawer):

* ``book``: shoe and chair 600 / 100 (a ChairV2-sized test gallery; enough training photos for a small CNN to learn
  in a few CPU minutes), the ten other categories 30 / 15: 2,050 photos and about 6,600 sketches;
* ``full``: shoe and chair 1800 / 200 (the QMUL-Shoe-V2 scale), the others 300 / 100;
* ``tiny``: shoe and chair 8 / 4, the others 4 / 2, for tests.

``<out>/collection.json`` lists the categories, profile and seed. Everything is derived from ``(seed, category)``,
so the same seed gives the same bytes, and a category's data do not depend on which other categories are written.
Each category is written to a temporary folder and renamed into place; :func:`generate` writes the whole collection
to a temporary folder and renames it onto ``out`` at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from sbir_core.data.safe_pickle import dump_pickle
from sbir_core.data.sketch import CANVAS, LONGER_SIDE
from sbir_core.data.synthetic.categories import CATEGORIES, make_shape, sample_attributes
from sbir_core.data.synthetic.drawer import DRAWERS, draw_sketch
from sbir_core.data.synthetic.geometry import Shape
from sbir_core.data.synthetic.photo import render_photo
from sbir_core.errors import DataError

VERSION = 2  # bump when the generator's output changes, so cached copies are regenerated
PHOTO_SIZE = 256


@dataclass(frozen=True)
class CategorySize:
    train_photos: int
    test_photos: int


@dataclass(frozen=True)
class Profile:
    """Photos per category; categories not listed in ``sizes`` get ``other``."""

    sizes: dict[str, CategorySize]
    other: CategorySize
    sketches_per_photo: tuple[tuple[int, float], ...] = ((3, 0.85), (4, 0.1), (5, 0.05))
    memory_error: float = 0.1  # probability that a sketch mis-remembers one attribute of its photo

    def size(self, category: str) -> CategorySize:
        return self.sizes.get(category, self.other)


# book: shoe and chair have 600 training photos (so that a small CNN learns something in a few CPU minutes) and a
# ChairV2-sized test gallery of 100 photos; the other ten categories are small (multi-category and few-shot
# chapters). full: the Shoe-V2 scale (1800 / 200 photos) for shoe and chair.
PROFILES = {
    "tiny": Profile({"shoe": CategorySize(8, 4), "chair": CategorySize(8, 4)}, CategorySize(4, 2)),  # tests
    "book": Profile({"shoe": CategorySize(600, 100), "chair": CategorySize(600, 100)}, CategorySize(30, 15)),
    "full": Profile({"shoe": CategorySize(1800, 200), "chair": CategorySize(1800, 200)}, CategorySize(300, 100)),
}


def _category_seed(seed: int, category: str) -> int:
    return zlib.crc32(f"{seed}/{category}".encode())


def _box(points: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in (*points.min(0), *points.max(0))]


@dataclass(frozen=True)
class _Job:
    """Everything one photo (and its sketches) depends on: the result is the same in any process, in any order."""

    photo_dir: str
    category: str
    index: int
    split: str
    seed: int  # the category's seed
    profile: Profile


def _make_photo(job: _Job) -> tuple[str, dict[str, np.ndarray], dict, dict[str, dict]]:
    """Render photo ``job.index`` (written to disk) and draw its sketches; returns what goes into the pickle/meta."""
    rng = np.random.default_rng([job.seed, job.index])
    schema = CATEGORIES[job.category].attributes
    name = f"{job.category}_{job.index:05d}"
    attributes = sample_attributes(job.category, rng)
    shape_seed = int(rng.integers(2**31))
    shape = make_shape(job.category, attributes, shape_seed)
    image, placed = render_photo(shape, rng, PHOTO_SIZE)
    Image.fromarray(image).save(Path(job.photo_dir) / f"{name}.png", format="PNG", compress_level=3)
    photo_meta = {"split": job.split, "attributes": attributes,
                  "part_boxes": {p.name: _box(np.concatenate(p.paths)) for p in placed.parts if p.in_sketch},
                  "part_boxes_sketch": _canonical_boxes(shape)}
    counts, probs = zip(*job.profile.sketches_per_photo)
    drawers = rng.choice(len(DRAWERS), size=int(rng.choice(counts, p=probs)), replace=False)
    coordinates, sketches_meta = {}, {}
    for k, drawer in enumerate(drawers, start=1):
        drawn = attributes
        if rng.uniform() < job.profile.memory_error:  # a wrong detail, as people sketch from memory
            drawn = dict(attributes)
            attr = sorted(schema)[int(rng.integers(len(schema)))]
            drawn[attr] = schema[attr][int(rng.integers(len(schema[attr])))]
        source = shape if drawn == attributes else make_shape(job.category, drawn, shape_seed)
        sketch, boxes = draw_sketch(source, DRAWERS[drawer], rng)
        key = f"/{job.split}/{name}_{k}"
        coordinates[key] = sketch.points
        sketches_meta[key] = {"drawer": int(drawer), "category": job.category, "part_boxes": boxes,
                              "misremembered": sorted(a for a in drawn if drawn[a] != attributes[a])}
    return name, coordinates, photo_meta, sketches_meta


def write_category(out: Path, category: str, profile: Profile, seed: int, pool: Executor | None = None,
                   progress: Callable[[int], None] | None = None) -> None:
    """Generate one category into ``out`` (which must not exist); see the module docstring for the files.

    Photos are made by ``pool`` (a process pool) when given; the bytes do not depend on it.
    """
    if category not in CATEGORIES:
        raise DataError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
    size = profile.size(category)
    cat_seed = _category_seed(seed, category)
    n_photos = size.train_photos + size.test_photos
    is_test = np.zeros(n_photos, bool)
    is_test[np.random.default_rng(cat_seed).permutation(n_photos)[: size.test_photos]] = True

    tmp = Path(tempfile.mkdtemp(prefix=f".{category}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset it becomes should not be
    try:
        (tmp / "photo").mkdir()
        jobs = [_Job(str(tmp / "photo"), category, i, "test" if is_test[i] else "train", cat_seed, profile)
                for i in range(n_photos)]
        results = pool.map(_make_photo, jobs, chunksize=8) if pool is not None else map(_make_photo, jobs)
        coordinates: dict[str, np.ndarray] = {}
        photos_meta: dict[str, dict] = {}
        sketches_meta: dict[str, dict] = {}
        for name, coords, photo_meta, sketch_meta in results:
            coordinates.update(coords)
            photos_meta[name] = photo_meta
            sketches_meta.update(sketch_meta)
            if progress is not None:
                progress(1)
        dump_pickle(coordinates, tmp / f"{category}_Coordinate")
        meta = {"category": category, "generator_version": VERSION, "seed": seed,
                "attributes": CATEGORIES[category].attributes, "drawers": [d.to_dict() for d in DRAWERS],
                "photos": photos_meta, "sketches": sketches_meta}
        (tmp / f"{category}_meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1))
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _canonical_boxes(shape: Shape) -> dict[str, list[float]]:
    """Part boxes of the undistorted instance in the normalised sketch frame (longer side 190, centred in 256)."""
    pts = shape.points()
    lo, hi = pts.min(0), pts.max(0)
    scale = LONGER_SIDE / float((hi - lo).max())
    return {p.name: _box((np.concatenate(p.paths) - (lo + hi) / 2) * scale + CANVAS / 2)
            for p in shape.parts if p.in_sketch}


def generate(out: str | os.PathLike, profile: str = "book", seed: int = 0, categories: Sequence[str] | None = None,
             progress: bool = False, overwrite: bool = False, workers: int | None = None) -> Path:
    """Write the benchmark to ``out`` (one folder per category + ``collection.json``) and return ``out``.

    ``workers`` processes render the photos (default: the CPU count, at most 8; 1 = in this process).
    """
    if profile not in PROFILES:
        raise DataError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    chosen = list(CATEGORIES) if not categories else list(dict.fromkeys(categories))
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise DataError(f"unknown categories {unknown} (known: {', '.join(CATEGORIES)})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise DataError("output folder exists and is not empty (pass overwrite=True / --force)", out)
        if written_by_us(out) is None:
            raise DataError(_NOT_OURS, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = PROFILES[profile]
    total = sum(spec.size(c).train_photos + spec.size(c).test_photos for c in chosen)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        from sbir_core.runtime import progress_disabled

        bar = tqdm(total=total, desc=f"synth {profile}", unit="photo", disable=progress_disabled())
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for category in chosen:
            if bar is not None:
                bar.set_postfix_str(category)
            write_category(tmp / category, category, spec, seed, pool, None if bar is None else bar.update)
        collection = {"generator_version": VERSION, "profile": profile, "seed": seed, "categories": chosen}
        (tmp / "collection.json").write_text(json.dumps(collection, sort_keys=True, indent=1))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _default_home() -> Path:
    """``<repo>/data/synthetic`` in a source checkout, else ``$SBIR_DATA`` or ``~/.cache/sbir_core``."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "sbir_core").is_dir():
        return repo / "data" / "synthetic"
    return Path(os.environ.get("SBIR_DATA", Path.home() / ".cache" / "sbir_core"))


_NOT_OURS = "not a synthetic collection written by sbir_core (no valid collection.json); refusing to replace it"


def written_by_us(out: Path) -> dict | None:
    """The ``collection.json`` of a folder :func:`generate` wrote, or None for any other folder."""
    try:
        info = json.loads((Path(out) / "collection.json").read_text())
    except (OSError, ValueError):
        return None
    keys = {"generator_version", "profile", "seed", "categories"}
    return info if isinstance(info, dict) and keys <= set(info) else None


def ensure_synthetic(profile: str = "book", seed: int = 0, root: str | os.PathLike | None = None) -> Path:
    """The folder of the synthetic collection ``<profile>-seed<seed>``, generated first if it is missing or stale.

    A stale collection (another generator version) is replaced only if this package wrote it; any other folder at
    ``root`` that is not empty is refused with a :class:`DataError` naming it, never replaced."""
    out = Path(root) if root is not None else _default_home() / f"{profile}-seed{seed}"
    info = written_by_us(out)
    expected = {"generator_version": VERSION, "profile": profile, "seed": seed, "categories": list(CATEGORIES)}
    if info is not None and all(info.get(k) == v for k, v in expected.items()):
        return out
    return generate(out, profile=profile, seed=seed, progress=True, overwrite=True)  # refuses folders not ours
