"""Adaptive FG-SBIR (Bhunia et al., ECCV 2022): the time of one adaptation, and of one meta-training step, on this
machine.

    python benchmarks/bench_meta.py                    # book network (64 px), k = 5, the default inner steps
    python benchmarks/bench_meta.py --shots 10 --steps 5 --threads 1 --repeats 50

One adaptation is what ``sbir meta adapt`` does once the run is loaded: the k support triplets (3k images) go
through F once, the head M takes the configured inner steps (``torch.func.grad``), and the adapted embedding is
returned. "all" fine-tunes every parameter instead (MAML's adaptation, task by task). A meta-training step is one
outer step of ``sbir_core.meta.meta_train`` on a batch of tasks (vmap over the tasks), backward included. The weights
do not change the timing: the book architecture is used with random weights.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from sbir_core import meta
from sbir_core.config import override, preset
from sbir_core.models import build_model
from sbir_core.train import SplitTensors


def timed(fn, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median and 95th percentile of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times), float(np.percentile(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--steps", type=int, default=meta.MetaConfig().inner_steps)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    run = override(preset("book"), ["model.name=attention"])
    size, side = run.model.input_size, run.train.data_size
    learner = meta.MetaLearner(build_model(run.model), 12, torch.eye(12), 0.3).eval()
    g = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (60, side, side, 3), generator=g, dtype=torch.uint8)
    train = SplitTensors(torch.randint(0, 256, (60, side, side), generator=g, dtype=torch.uint8), photos,
                         torch.arange(60), [str(i) for i in range(60)])
    support = meta.draw_support(train, args.shots, seed=0)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"capability {torch.backends.cpu.get_cpu_capability()}; k = {args.shots}, {args.steps} inner steps, "
          f"{size} px")
    print("| what | median (ms) | p95 (ms) |\n|---|---|---|")
    for what in ("head", "all"):
        cfg = meta.meta_preset("ours" if what == "head" else "maml", inner_steps=args.steps)
        med, p95 = timed(lambda: meta.adapt(learner, support, cfg, size, what=what), args.repeats)
        print(f"| one adaptation, {what} ({'ours, ANIL' if what == 'head' else 'fine-tuning all, MAML'}) "
              f"| {med:.1f} | {p95:.1f} |")
    pool = meta.Pool("toy", train, 0, np.full(60, -1))
    for method in ("ours", "maml"):
        cfg = meta.meta_preset(method, meta_steps=1, inner_steps=args.steps)
        learner.train()
        rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)

        def step() -> None:
            loss, _ = meta.outer_loss(learner, meta.sample_tasks([pool], cfg, rng), cfg, size, gen)
            loss.backward()

        med, p95 = timed(step, max(3, args.repeats // 4), warmup=1)
        print(f"| one meta-training step, {method} ({cfg.tasks_per_batch} tasks of {cfg.shots} + {cfg.queries}) "
              f"| {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
