"""The drawing pad (chapter 07): incremental rendering, the retriever, the widget, the book's export and its JS."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from sbir_core.config import preset
from sbir_core.data import Sketch, StrokeCanvas, render_sketches
from sbir_core.errors import DataError
from sbir_core.losses import HOLEFTripletLoss, TripletLoss
from sbir_core.models import build_model
from sbir_core.train import SplitTensors, distance_matrix
from sbir_core.widgets import Retriever, SketchPad, export_book_pad
from sbir_core.widgets.pad import STATIC

DATA, INPUT = 72, 64


def random_sketch(rng: np.random.Generator, n_strokes: int | None = None) -> Sketch:
    """Strokes of random walks on the frame, some leaving it, some of one point, coordinates often on .5."""
    strokes = []
    for _ in range(n_strokes or int(rng.integers(1, 7))):
        n = int(rng.integers(1, 30))
        start = rng.uniform(-10, 266, 2)
        steps = rng.normal(0, 9, (n, 2))
        points = start + np.cumsum(steps, axis=0)
        halves = rng.random(n) < 0.3  # exact .5 coordinates: rounding half to even must agree
        points[halves] = np.round(points[halves] * 2) / 2
        strokes.append(points)
    return Sketch.from_strokes(strokes)


@pytest.fixture(scope="module")
def small_run() -> tuple:
    torch.manual_seed(0)
    cfg = preset("book")
    model = build_model(cfg.model).eval()
    rng = np.random.default_rng(0)
    photos = torch.from_numpy(rng.integers(0, 256, (12, DATA, DATA, 3), dtype=np.uint8))
    return model, TripletLoss(margin=0.3, squared=True), photos


def test_stroke_canvas_equals_render_sketches() -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        sketch = random_sketch(rng)
        canvas = StrokeCanvas()
        for stroke in sketch.strokes():
            canvas.add_stroke(stroke)
        for size in (DATA, 64, 256):
            assert torch.equal(canvas.raster(size), render_sketches([sketch], size)[0]), size


def test_retriever_ranks_as_distance_matrix(small_run: tuple) -> None:
    model, loss, photos = small_run
    rng = np.random.default_rng(2)
    sketches = [random_sketch(rng) for _ in range(6)]
    rasters = np.round(render_sketches(sketches, DATA).numpy() * 255).astype(np.uint8)
    data = SplitTensors(torch.from_numpy(rasters), photos, torch.arange(6), [f"p{i}" for i in range(12)])
    expected = distance_matrix(model, loss, data, INPUT)
    retriever = Retriever(model, loss, photos, DATA, INPUT, target=3)
    for i, sketch in enumerate(sketches):
        ranking = retriever.rank(sketch)
        np.testing.assert_allclose(ranking.distances, expected[i].numpy(), rtol=1e-5, atol=1e-5)
        assert ranking.order.tolist() == np.argsort(expected[i].numpy(), kind="stable").tolist()
        assert ranking.order[ranking.target_rank - 1] == 3 and ranking.n_strokes == sketch.n_strokes


def test_retriever_with_an_onthefly_policy(small_run: tuple) -> None:
    from sbir_core.models.embedding import sketch_input, split_final_layer
    from sbir_core.rl import GaussianPolicy, rank_of_target

    model, loss, photos = small_run
    features, head = split_final_layer(model.sketch)
    sketch = random_sketch(np.random.default_rng(8))
    plain = Retriever(model, loss, photos, DATA, INPUT, target=1).rank(sketch)
    same = Retriever(model, loss, photos, DATA, INPUT, target=1, policy=GaussianPolicy.from_head(head)).rank(sketch)
    assert same.order.tolist() == plain.order.tolist()
    np.testing.assert_allclose(same.distances, plain.distances, atol=1e-5)
    torch.manual_seed(1)
    policy = GaussianPolicy.from_head(head, init="random")
    retriever = Retriever(model, loss, photos, DATA, INPUT, target=1, policy=policy)
    ranking = retriever.rank(sketch)
    top, left, _ = retriever.view
    crop = retriever.raster(sketch)[top:top + INPUT, left:left + INPUT][None]
    with torch.no_grad():
        expected = rank_of_target(policy(features(sketch_input(crop))), retriever.gallery, torch.tensor([1]))
    assert ranking.target_rank == int(expected[0]) and ranking.order.tolist() != plain.order.tolist()


def test_retriever_incremental_equals_from_scratch(small_run: tuple) -> None:
    model, loss, photos = small_run
    sketch = random_sketch(np.random.default_rng(3), n_strokes=5)
    strokes = [np.column_stack([s, np.arange(len(s))]) for s in sketch.strokes()]  # with timestamps
    growing = Retriever(model, loss, photos, DATA, INPUT)
    for k in range(1, 6):
        incremental = growing.rank(strokes[:k])
        fresh = Retriever(model, loss, photos, DATA, INPUT).rank(strokes[:k])
        assert incremental.order.tolist() == fresh.order.tolist()
        np.testing.assert_array_equal(incremental.distances, fresh.distances)
    undone = growing.rank(strokes[:2])  # undo: not a continuation, drawn again
    assert undone.n_strokes == 2
    fresh = Retriever(model, loss, photos, DATA, INPUT).rank(strokes[:2])
    np.testing.assert_array_equal(undone.distances, fresh.distances)


@pytest.mark.parametrize("strokes, problem", [
    ([], "empty"),
    ([[[1.0, 2.0], [float("nan"), 3.0]]], "NaN"),
    ([[]], "non-empty"),
    ([[[1.0, 2.0, 3.0, 4.0]]], "non-empty"),
    ([[["a", "b"]]], "numeric"),
])
def test_bad_strokes_are_one_line_errors(small_run: tuple, strokes: list, problem: str) -> None:
    model, loss, photos = small_run
    with pytest.raises(DataError, match=problem) as info:
        Retriever(model, loss, photos, DATA, INPUT).rank(strokes)
    assert "\n" not in str(info.value) and str(info.value).startswith("strokes:")


def test_retriever_rejects_a_bad_gallery(small_run: tuple) -> None:
    model, loss, photos = small_run
    with pytest.raises(ValueError, match="uint8"):
        Retriever(model, loss, photos.float(), DATA, INPUT)
    with pytest.raises(ValueError, match="target 12"):
        Retriever(model, loss, photos, DATA, INPUT, target=12)


def test_pad_sketch_round_trip_and_replay(small_run: tuple) -> None:
    model, loss, photos = small_run
    pad = SketchPad(Retriever(model, loss, photos, DATA, INPUT, target=5), top_k=3)
    with pytest.raises(DataError, match="SketchPad.strokes: the pad is empty"):
        pad.sketch
    sketch = random_sketch(np.random.default_rng(4), n_strokes=4)
    pad.load(sketch.points, times=np.arange(sketch.n_points) * 10.0)
    np.testing.assert_array_equal(pad.to_qmul(), sketch.points)
    np.testing.assert_array_equal(pad.times, np.arange(sketch.n_points) * 10.0)
    with pytest.raises(DataError, match="one value per point"):
        pad.load(sketch, times=[0.0])
    rankings = pad.replay(sketch)
    assert [r.n_strokes for r in rankings] == [1, 2, 3, 4]
    assert pad.history == [r.target_rank for r in rankings]
    assert pad.results["rank"] == rankings[-1].target_rank and len(pad.results["top"]) == 3
    assert [t["label"] for t in pad.results["top"]] == [str(i) for i in rankings[-1].order[:3]]
    pad.strokes = []  # clear
    assert pad.results == {} and pad.history == []


def test_pad_shows_bad_strokes_instead_of_raising(small_run: tuple) -> None:
    model, loss, photos = small_run
    pad = SketchPad(Retriever(model, loss, photos, DATA, INPUT, target=0))
    pad.strokes = [[[1.0, 2.0, 0.0, 9.0]]]
    assert "stroke 0" in pad.results["error"]


def test_pad_throttles_strokes_that_arrive_while_a_ranking_is_due(small_run: tuple) -> None:
    model, loss, photos = small_run
    pad = SketchPad(Retriever(model, loss, photos, DATA, INPUT, target=0), min_interval=0.2)
    pad._clock = lambda: 100.0  # strokes 2-4 arrive within min_interval of the first ranking, however slow the machine
    calls = []
    original = pad.refresh
    pad.refresh = lambda: calls.append(len(pad.strokes)) or original()
    sketch = random_sketch(np.random.default_rng(5), n_strokes=4)
    strokes = [s.tolist() for s in sketch.strokes()]

    async def draw() -> None:
        for k in range(1, 5):  # messages the kernel handles one after the other
            pad.strokes = strokes[:k]
        await asyncio.sleep(0.3)  # the due ranking runs after min_interval

    asyncio.run(draw())
    assert calls == [1, 4], "stroke 1 at once; strokes 2-4 arrive within min_interval and are ranked once"
    assert pad.results["n_strokes"] == 4


def test_export_book_pad_writes_an_encoder_equal_to_pytorch(small_run: tuple, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, loss, photos = small_run
    retriever = Retriever(model, loss, photos, DATA, INPUT, target=2, names=[f"p{i}" for i in range(12)])
    export_book_pad(retriever, tmp_path / "pad", top_k=4)
    record = json.loads((tmp_path / "pad" / "gallery.json").read_text())
    assert (record["format"], record["target"], record["top_k"], record["dim"]) == (1, 2, 4, 128)
    assert len(record["thumbnails"]) == 12 and record["names"][2] == "p2" and record["squared"] is True
    session = ort.InferenceSession(str(tmp_path / "pad" / "encoder.onnx"))
    raster = retriever.raster(random_sketch(np.random.default_rng(6)))
    top, left, _ = retriever.view
    crop = raster[top:top + INPUT, left:left + INPUT].float()[None].numpy()
    np.testing.assert_allclose(session.run(None, {"crop": crop})[0][0], retriever.embed_raster(raster).numpy(),
                               atol=1e-5)
    assert not list((tmp_path / "pad").glob(".*.tmp")), "nothing half-written"


def test_export_book_pad_refuses_what_the_browser_cannot_rank(small_run: tuple, tmp_path: Path) -> None:
    model, loss, photos = small_run
    with pytest.raises(ValueError, match="HOLEFTripletLoss"):
        export_book_pad(Retriever(model, HOLEFTripletLoss(128), photos, DATA, INPUT, target=0), tmp_path)
    with pytest.raises(ValueError, match="target"):
        export_book_pad(Retriever(model, loss, photos, DATA, INPUT), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js runs the pad's JavaScript outside a browser")
def test_the_pads_javascript_rasterises_as_python(tmp_path: Path) -> None:
    """sbir_pad.js's rasterize / modelInput against render_sketches, bit for bit (the browser test repeats it)."""
    rng = np.random.default_rng(7)
    sketches = [random_sketch(rng) for _ in range(30)]
    cases = [[s.tolist() for s in sk.strokes()] for sk in sketches]
    module = tmp_path / "sbir_pad.mjs"
    module.write_text((STATIC / "sbir_pad.js").read_text())
    script = (f"import {{ modelInput, rasterize }} from {json.dumps(module.as_uri())};\n"
              f"const cases = {json.dumps(cases)};\n"
              "console.log(JSON.stringify(cases.map((c) => [Array.from(rasterize(c)).join(''),"
              f" Array.from(modelInput(c, {DATA}, {INPUT}))])));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    results = json.loads(out.stdout)
    full = render_sketches(sketches, 256).numpy()
    small = np.round(render_sketches(sketches, DATA).numpy() * 255).astype(np.uint8)
    c = (DATA - INPUT) // 2
    for i, (ink, crop) in enumerate(results):
        assert ink == "".join(map(str, full[i].astype(np.uint8).ravel())), f"sketch {i}: the 256 raster differs"
        np.testing.assert_array_equal(np.array(crop).reshape(INPUT, INPUT), small[i, c:c + INPUT, c:c + INPUT])
