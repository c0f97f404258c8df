"""The drawing pad (chapter 07): the time from a finished stroke to a new ranking, in the kernel and in the browser.

    python benchmarks/bench_pad.py                        # 2,000-photo gallery, 1 thread, kernel and browser
    python benchmarks/bench_pad.py --gallery 500 --threads 2 --no-browser

Each test sketch of the synthetic shoes is drawn stroke by stroke; after every stroke the gallery is ranked.

* kernel, ours: ``Retriever.rank`` (renders only the new stroke with ``StrokeCanvas``, embeds, ranks);
* kernel, official style: the whole sketch rendered again at every stroke (``render_reference``: Bresenham in Python
  and ``scipy.ndimage.binary_dilation``, as the released on-the-fly code does), area-resized, embedded, ranked;
* browser: ``BookRetriever.rank`` of ``sbir_pad_book.js`` in headless Chromium (onnxruntime-web, wasm, 1 thread):
  rasterise, embed, rank, as the published book does after each stroke.

The book network (64 px) with random weights: weights do not change the timing. The gallery is the 100 test photos
repeated to ``--gallery`` photos (its size is what costs).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sbir_core.config import preset
from sbir_core.data import Sketch, StrokeCanvas, load_dataset
from sbir_core.data.render import render_reference
from sbir_core.data.synthetic import ensure_synthetic
from sbir_core.losses import TripletLoss
from sbir_core.models import build_model
from sbir_core.train import SplitTensors
from sbir_core.widgets import Retriever, export_book_pad
from sbir_core.widgets.pad import STATIC

ROOT = Path(__file__).resolve().parents[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that does not log every request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} ms, p95 {np.percentile(times, 95):6.2f} ms ({len(times)} strokes)"


def official_render(strokes: list[np.ndarray], size: int) -> torch.Tensor:
    """The whole sketch rendered again (``render_reference``), area-resized to ``size``, as uint8."""
    ink = torch.from_numpy(render_reference(Sketch.from_strokes(strokes))).float()[None, None]
    raster = F.interpolate(ink, size=(size, size), mode="area")[0, 0].numpy()
    return torch.from_numpy(np.round(raster * 255).astype(np.uint8))


def official_style(retriever: Retriever, strokes: list[np.ndarray]) -> np.ndarray:
    """Render the whole sketch again, embed it from scratch, rank."""
    raster = official_render(strokes, retriever.data_size)
    distances = retriever.loss.pairwise(retriever.embed_raster(raster)[None], retriever.gallery)[0]
    return np.argsort(distances.numpy(), kind="stable")


def kernel(retriever: Retriever, sketches: list) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ours": [], "official": [], "render ours": [], "render official": []}
    for sketch in sketches:
        parts, canvas = sketch.strokes(), StrokeCanvas()
        for k in range(1, len(parts) + 1):
            t0 = time.perf_counter()
            canvas.add_stroke(parts[k - 1])
            np.round(canvas.raster(retriever.data_size).numpy() * 255).astype(np.uint8)
            times["render ours"].append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            official_render(parts[:k], retriever.data_size)
            times["render official"].append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ours = retriever.rank(parts[:k]).order
            times["ours"].append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            theirs = official_style(retriever, parts[:k])
            times["official"].append(1e3 * (time.perf_counter() - t0))
            assert np.array_equal(ours, theirs), "the two renderings must rank alike"
    return times


def browser(retriever: Retriever, sketches: list, chromium: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-pad-") as tmp:
        site = Path(tmp)
        for f in STATIC.glob("*.js"):
            shutil.copy(f, site)
        shutil.copytree(ROOT / "book" / "_vendor" / "onnxruntime-web", site / "onnxruntime-web")
        export_book_pad(retriever, site / "pad")
        (site / "index.html").write_text('<div class="sbir-pad"></div><script type="module" src="sbir_pad_book.js">'
                                          "</script>")
        handler = functools.partial(QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        cases = [[s.tolist() for s in sk.strokes()] for sk in sketches]
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                page = b.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                times = page.evaluate("""async (cases) => {
                    const [{ retriever }] = await window.sbirPads;
                    for (let i = 0; i < 5; i++) await retriever.rank(cases[0]);  // warm-up
                    const out = [];
                    for (const c of cases) for (let k = 1; k <= c.length; k++) {
                        out.push((await retriever.rank(c.slice(0, k))).ms);
                    }
                    return out;
                }""", cases)
                b.close()
        finally:
            server.shutdown()
            server.server_close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=2000, help="gallery photos (default 2000)")
    parser.add_argument("--sketches", type=int, default=30, help="test sketches drawn (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data", help="a dataset folder with vector sketches (default: the synthetic shoes)")
    parser.add_argument("--no-browser", action="store_true", help="time the kernel only")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser Playwright drives")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = preset("book")
    data = load_dataset(args.data or ensure_synthetic("book", 0) / "shoe")
    if data.test.vectors is None:
        parser.error(f"{args.data}: its sketches are images, not strokes")
    test = SplitTensors.from_split(data.test, cfg.train.data_size)
    photos = test.photos.repeat((args.gallery + test.n_photos - 1) // test.n_photos, 1, 1, 1)[:args.gallery]
    model = build_model(cfg.model).eval()
    retriever = Retriever(model, TripletLoss(), photos, cfg.train.data_size, cfg.model.input_size, target=0)
    sketches = list(data.test.vectors[:args.sketches])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"gallery {len(retriever)} photos, {len(sketches)} sketches drawn stroke by stroke")
    kernel(retriever, sketches[:2])  # warm-up
    times = kernel(retriever, sketches)
    print(f"kernel, ours (new stroke only):       {summary(times['ours'])}")
    print(f"kernel, official style (whole sketch): {summary(times['official'])}")
    print(f"speed-up (medians): {statistics.median(times['official']) / statistics.median(times['ours']):.1f}x")
    print(f"  of which rendering, ours:           {summary(times['render ours'])}")
    print(f"  of which rendering, official style: {summary(times['render official'])}")
    if not args.no_browser:
        if not (ROOT / "book" / "_vendor" / "onnxruntime-web").is_dir():
            parser.error("onnxruntime-web is not fetched yet: run tools/vendor_ort_web.sh (make book does)")
        print(f"browser (onnxruntime-web, wasm, 1 thread): {summary(browser(retriever, sketches, args.chromium))}")


if __name__ == "__main__":
    main()
