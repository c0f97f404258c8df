"""One on-the-fly query (Bhunia et al., CVPR 2020): the package's incremental path against the official style, in
milliseconds per query, on this machine.

    python benchmarks/bench_onthefly.py                      # 10 synthetic shoe sketches x 20 steps, book model
    python benchmarks/bench_onthefly.py --data PATH/ChairV2  # test sketches of a QMUL-V2 folder
    python benchmarks/bench_onthefly.py --run RUN            # a trained run's model instead of the book architecture
    python benchmarks/bench_onthefly.py --kendall            # also: the Eq. 4 reward's Kendall tau, scipy vs batched

A query happens whenever the next 5 % of the points is drawn: the sketch so far is rasterised, embedded by the sketch
branch, and the gallery of 2,000 photos (embedded once, beforehand) is ranked.

* fast (the drawing pad and the chapter): only the NEW points (and the segment joining them to the previous point)
  are rasterised by the batched renderer on the 256 frame and OR-ed into the canvas (dilation distributes over a
  union, so this is exactly the raster of the whole prefix; checked), area-resized to the data size, centre-cropped,
  embedded, and ranked by one matrix product;
* official style: the whole prefix is redrawn every time with pure-Python Bresenham lines and a scipy dilation
  (``render_reference``, as ``mydrawPNG`` in the released code), resized, embedded, and ranked by
  ``F.pairwise_distance`` against every photo.

The network and the gallery are the same in both, so the difference is the rendering (and a little ranking). The
weights do not change the timing: without ``--run`` the book preset's architecture is used with random weights.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from sbir_core.config import preset
from sbir_core.data import load_dataset
from sbir_core.data.render import _prefix_points, _resize, progressive_rasters, render_reference, render_sketches
from sbir_core.data.sketch import CANVAS, Sketch
from sbir_core.data.synthetic.categories import make_shape, sample_attributes
from sbir_core.data.synthetic.drawer import DRAWERS, draw_sketch
from sbir_core.data.views import crop_views, eval_views
from sbir_core.models import build_model, sketch_input
from sbir_core.train import load_run


def synthetic_sketches(n: int, seed: int = 0) -> list[Sketch]:
    rng = np.random.default_rng(seed)
    return [draw_sketch(make_shape("shoe", sample_attributes("shoe", rng), i), DRAWERS[i % len(DRAWERS)], rng)[0]
            for i in range(n)]


def new_points(sketch: Sketch, lo: int, hi: int) -> Sketch:
    """Points ``lo..hi-1`` as a sketch, starting at point ``lo - 1`` when it joins them (same stroke): drawing this
    adds exactly the segments that the prefix ``hi`` has and the prefix ``lo`` has not."""
    start = lo - 1 if lo > 0 and sketch.points[lo - 1, 2] == 0 else lo
    return Sketch(sketch.points[start:hi])


class Query:
    """The embedding and ranking shared by both paths: centre crop, sketch branch, rank of the true photo."""

    def __init__(self, model: torch.nn.Module, data_size: int, size: int, gallery: torch.Tensor) -> None:
        self.model, self.size, self.gallery = model, size, gallery
        top, left, flip = eval_views(data_size, size, multiview=False)[0]
        self.view = (torch.tensor([top]), torch.tensor([left]), torch.tensor([flip]))

    @torch.no_grad()
    def embed(self, raster: torch.Tensor) -> torch.Tensor:
        """A (data_size, data_size) float raster in [0, 1] -> (1, E), stored as uint8 like the evaluation data."""
        image = torch.round(raster * 255).to(torch.uint8)[None]
        return self.model.embed_sketch(sketch_input(crop_views(image, self.size, *self.view)))


def draw(canvas: torch.Tensor, sketch: Sketch, lo: int, hi: int) -> torch.Tensor:
    """OR the binary raster of points ``lo..hi-1`` (batched renderer, 256 frame) into the bool ``canvas``."""
    return canvas | progressive_rasters([new_points(sketch, lo, hi)], steps=1, dtype=torch.bool)[0, 0]


def fast_episode(sketch: Sketch, cuts: list[int], q: Query, data_size: int, target: int) -> np.ndarray:
    """ms (render, embed, rank) of every query of one sketch, drawing incrementally."""
    canvas = torch.zeros(CANVAS, CANVAS, dtype=torch.bool)
    times, prev = [], 0
    for hi in cuts:
        t0 = time.perf_counter()
        canvas = draw(canvas, sketch, prev, hi)
        raster = _resize(canvas.float(), data_size, CANVAS)
        t1 = time.perf_counter()
        e = F.normalize(q.embed(raster), dim=1)
        t2 = time.perf_counter()
        d = (e * e).sum(1, keepdim=True) + (q.gallery * q.gallery).sum(1) - 2 * e @ q.gallery.T
        int((d <= d[0, target]).sum())
        t3 = time.perf_counter()
        times.append((t1 - t0, t2 - t1, t3 - t2))
        prev = hi
    return 1000 * np.array(times)


def official_episode(sketch: Sketch, cuts: list[int], q: Query, data_size: int, target: int) -> np.ndarray:
    """ms (render, embed, rank) of every query of one sketch, redrawing the prefix each time."""
    times = []
    for hi in cuts:
        t0 = time.perf_counter()
        raster = _resize(torch.from_numpy(render_reference(sketch, hi)).float(), data_size, CANVAS)
        t1 = time.perf_counter()
        e = F.normalize(q.embed(raster), dim=1)
        t2 = time.perf_counter()
        d = F.pairwise_distance(e, q.gallery)
        int((d <= d[target]).sum())
        t3 = time.perf_counter()
        times.append((t1 - t0, t2 - t1, t3 - t2))
    return 1000 * np.array(times)


def check_incremental(sketch: Sketch, cuts: list[int], data_size: int) -> bool:
    """The incremental canvas equals a fresh render of every prefix."""
    canvas, prev, same = torch.zeros(CANVAS, CANVAS, dtype=torch.bool), 0, True
    for hi in cuts:
        canvas = draw(canvas, sketch, prev, hi)
        whole = render_sketches([Sketch(sketch.points[:hi])], size=data_size)[0]
        same &= torch.equal(_resize(canvas.float(), data_size, CANVAS), whole)
        prev = hi
    return bool(same)


def kendall_table(photos: int, episodes: int = 16, steps: int = 20, repeats: int = 3) -> None:
    """The Kendall-tau part of one Eq. 4 reward computation: scipy per pair against the batched version."""
    from scipy.stats import kendalltau

    from sbir_core.rl import _step_kendall

    d = torch.rand(episodes, steps, photos)
    dn = d.numpy()

    def scipy_distances() -> np.ndarray:
        return np.array([[(1 - kendalltau(dn[b, t], dn[b, t + 1]).statistic) / 2 for t in range(steps - 1)]
                         for b in range(episodes)])

    best = lambda fn: min(_timed(fn) for _ in range(repeats))  # noqa: E731
    t_scipy, t_fast = best(scipy_distances), best(lambda: _step_kendall(d))
    same = np.array_equal(scipy_distances().astype(np.float32), _step_kendall(d).numpy())
    print(f"\nKendall tau of one update ({episodes} episodes x {steps - 1} step pairs, {photos} photos): "
          f"scipy {1000 * t_scipy:.1f} ms, batched {1000 * t_fast:.1f} ms ({t_scipy / t_fast:.1f}x); identical: {same}")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a QMUL-V2 folder (its test sketches); default: synthetic shoe sketches")
    parser.add_argument("--run", help="a run folder written by sbir train; default: the book architecture")
    parser.add_argument("-n", type=int, default=10, help="sketches (default 10)")
    parser.add_argument("--steps", type=int, default=20, help="queries per sketch (default 20: every 5 %% of points)")
    parser.add_argument("--photos", type=int, default=2000, help="gallery size (default 2,000)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--kendall", action="store_true", help="also time the Eq. 4 reward's Kendall tau")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.run:
        cfg, model, _ = load_run(args.run, "cpu")
    else:
        cfg = preset("book")
        model = build_model(cfg.model).eval()
    sketches = load_dataset(args.data).test.vectors[: args.n] if args.data else synthetic_sketches(args.n)
    gallery = F.normalize(torch.randn(args.photos, model.embed_dim), dim=1)
    q = Query(model, cfg.train.data_size, cfg.model.input_size, gallery)
    targets = np.random.default_rng(0).integers(0, args.photos, len(sketches))
    cuts = [_prefix_points(s, args.steps, "points") for s in sketches]
    same = all(check_incremental(s, c, cfg.train.data_size) for s, c in zip(sketches[:3], cuts[:3]))

    for s, c, t in zip(sketches[:1], cuts[:1], targets):  # warm-up
        fast_episode(s, c, q, cfg.train.data_size, t)
        official_episode(s, c, q, cfg.train.data_size, t)
    fast = np.concatenate([fast_episode(s, c, q, cfg.train.data_size, t) for s, c, t in zip(sketches, cuts, targets)])
    official = np.concatenate([official_episode(s, c, q, cfg.train.data_size, t)
                               for s, c, t in zip(sketches, cuts, targets)])

    points = np.mean([s.n_points for s in sketches])
    print(f"{len(fast)} queries ({len(sketches)} sketches of {points:.0f} points on average, {args.steps} steps), "
          f"model {cfg.model.name}/{cfg.model.backbone} at {cfg.model.input_size} px from {cfg.train.data_size} px, "
          f"{args.photos} photos, torch threads {args.threads}")
    print(f"  {'ms per query (mean)':<58s}{'render':>8s}{'embed':>8s}{'rank':>8s}{'total':>8s}")
    for name, t in (("fast: new points only, batched renderer, matrix product", fast),
                    ("official style: redraw in Python + scipy, pairwise_distance", official)):
        print(f"  {name:<58s}" + "".join(f"{x:8.2f}" for x in (*t.mean(0), t.sum(1).mean())))
    total_fast, total_official = fast.sum(1).mean(), official.sum(1).mean()
    print(f"speed-up {total_official / total_fast:.1f}x; fast path p95 {np.percentile(fast.sum(1), 95):.2f} ms "
          f"(target <= 20 ms: {'met' if total_fast <= 20 else 'NOT met'}); incremental raster == whole-prefix raster: "
          f"{same}")
    if args.kendall:
        kendall_table(args.photos)
        kendall_table(600)
    if not same:
        raise SystemExit("the incremental raster differs from the whole prefix's")


if __name__ == "__main__":
    main()
