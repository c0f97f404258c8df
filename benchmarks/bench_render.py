"""Progressive rendering: the batched renderer versus the official-style per-step loop, side by side.

    python benchmarks/bench_render.py                      # 100 synthetic chair sketches, 20 steps, 256 px
    python benchmarks/bench_render.py --data PATH/ChairV2  # the test sketches of a real QMUL-V2 folder

The reference redraws every step from scratch with pure-Python Bresenham lines and a scipy dilation, as
``mydrawPNG`` in the official on-the-fly code does; the fast path renders all steps of all sketches at once
(:func:`sbir_core.data.render.progressive_rasters`). Both must give the same rasters; the script checks that.

Whole sketches at the training sizes (:func:`~sbir_core.data.render.render_sketches`, what every chapter renders its
splits with) count the ink of each pooling window from bool rasters; the script compares them with the progressive
path at one step (int16 first-step maps, float area resize), which must give the same bits.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sbir_core.data import load_dataset
from sbir_core.data.render import progressive_rasters, progressive_reference, render_sketches
from sbir_core.data.synthetic.categories import make_shape, sample_attributes
from sbir_core.data.synthetic.drawer import DRAWERS, draw_sketch


def synthetic_sketches(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [draw_sketch(make_shape("chair", sample_attributes("chair", rng), i), DRAWERS[i % len(DRAWERS)], rng)[0]
            for i in range(n)]


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a QMUL-V2 folder; default: synthetic chair sketches")
    parser.add_argument("-n", type=int, default=100, help="sketches (default 100)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--schedule", default="points", choices=["points", "strokes", "official17"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sketches = load_dataset(args.data).test.vectors[: args.n] if args.data else synthetic_sketches(args.n)
    points = np.mean([s.n_points for s in sketches])
    steps = 17 if args.schedule == "official17" else args.steps
    print(f"{len(sketches)} sketches ({points:.0f} points on average), {steps} steps, 256 x 256, "
          f"schedule {args.schedule!r}, torch threads {args.threads}")

    t_ref, ref = best_of(lambda: np.stack([progressive_reference(s, args.steps, args.schedule) for s in sketches]), 1)
    t_fast, fast = best_of(lambda: progressive_rasters(sketches, args.steps, schedule=args.schedule, dtype=torch.bool),
                           args.repeats)
    t_float, _ = best_of(lambda: progressive_rasters(sketches, args.steps, size=64, schedule=args.schedule),
                         args.repeats)
    same = np.array_equal(fast.numpy(), ref)
    rows = [("official-style loop (Bresenham in Python + scipy dilation per step)", t_ref),
            ("batched renderer, binary 256 px", t_fast), ("batched renderer, float32 resized to 64 px", t_float)]
    for name, t in rows:
        print(f"  {name:<72s} {t:8.3f} s  {1000 * t / (len(sketches) * steps):7.3f} ms/raster")
    print(f"speed-up (binary 256 px): {t_ref / t_fast:.1f}x; identical rasters: {same}")
    for size in (72, 128):
        t_one, one = best_of(lambda: progressive_rasters(sketches, 1, size=size)[:, 0], args.repeats)
        t_whole, whole = best_of(lambda: render_sketches(sketches, size), args.repeats)
        same &= torch.equal(one, whole)
        print(f"  whole sketches at {size} px: progressive path at one step {t_one:.3f} s, render_sketches "
              f"{t_whole:.3f} s ({t_one / t_whole:.1f}x); identical: {torch.equal(one, whole)}")
    if torch.cuda.is_available():
        progressive_rasters(sketches[:2], args.steps, schedule=args.schedule, device="cuda")
        torch.cuda.synchronize()
        start = time.perf_counter()
        progressive_rasters(sketches, args.steps, schedule=args.schedule, device="cuda", dtype=torch.bool)
        torch.cuda.synchronize()
        print(f"  batched renderer on {torch.cuda.get_device_name()}: {time.perf_counter() - start:.3f} s")
    if not same:
        raise SystemExit("the two renderers disagree")


if __name__ == "__main__":
    main()
