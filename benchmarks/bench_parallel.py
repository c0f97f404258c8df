"""Chapter 03's training runs, one after the other on all threads against side by side (``cached_fit_many``).

Trains the same N runs of the book preset (4 epochs, the first 300 training photos of the synthetic shoes, the
variants of chapter 03) twice, each time into an empty temporary run cache, and prints the wall times and the ratio.

    python benchmarks/bench_parallel.py             # 4 runs
    python benchmarks/bench_parallel.py --runs 6
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from sbir_core.cache import cached_fit, cached_fit_many
from sbir_core.config import override, preset
from sbir_core.data import load_dataset
from sbir_core.data.synthetic import ensure_synthetic
from sbir_core.runtime import usable_cpus
from sbir_core.train import SplitTensors

VARIANTS = ["model.name=triplet-sn", "model.name=attention", "model.name=fusion", "model.name=attention-fusion"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    base = override(preset("book"), ["train.epochs=4"])
    train = SplitTensors.from_split(load_dataset(ensure_synthetic("book", 0) / "shoe").train, base.train.data_size)
    train = train.subset(np.arange(300))
    cfgs = [override(base, [VARIANTS[i % len(VARIANTS)], f"seed={i // len(VARIANTS)}"]) for i in range(args.runs)]
    times = {}
    for name in ("sequential", "side by side"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["SBIR_CACHE"] = cache
            t0 = time.perf_counter()
            if name == "sequential":
                for cfg in cfgs:
                    cached_fit(cfg, train, device="cpu", progress=False)
            else:
                cached_fit_many(cfgs, train, device="cpu", progress=False)
            times[name] = time.perf_counter() - t0
    print(f"{args.runs} runs, {usable_cpus()} usable cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads when sequential)")
    for name, t in times.items():
        print(f"  {name:12s} {t:7.1f} s")
    print(f"  ratio        {times['sequential'] / times['side by side']:7.2f}x")


if __name__ == "__main__":
    main()
