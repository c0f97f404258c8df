"""Training throughput (triplets per second) of the triplet trainer for each backbone, on this machine.

Runs ``sbir_core.train.fit`` (the real training loop: sampling, crops, forward, backward, optimiser step) on random
in-memory data for two epochs and reports the second epoch, so start-up costs are excluded. The configuration is the
``book`` preset with the backbone and its input size changed (InceptionV3 needs at least 75 px, Sketch-a-Net about
100 px) and the papers' sampling (one random negative per anchor), so a triplet is three images through the network.

    python benchmarks/bench_train.py                 # all backbones, 2 threads
    python benchmarks/bench_train.py --threads 1 --backbones compact sketchanet
"""
from __future__ import annotations

import argparse
import platform

import torch

from sbir_core.config import override, preset
from sbir_core.train import SplitTensors, fit

INPUT_SIZES = {"compact": 64, "sketchanet": 112, "vgg16": 64, "inception_v3": 96}


def random_split(n: int, side: int, seed: int = 0) -> SplitTensors:
    g = torch.Generator().manual_seed(seed)
    return SplitTensors(
        sketches=torch.randint(0, 256, (n, side, side), generator=g, dtype=torch.uint8),
        photos=torch.randint(0, 256, (n, side, side, 3), generator=g, dtype=torch.uint8),
        positives=torch.arange(n), photo_names=[str(i) for i in range(n)])


def bench(backbone: str, n_triplets: int, batch_size: int, device: str) -> dict[str, float]:
    size = INPUT_SIZES[backbone]
    cfg = override(preset("book"), [f"model.backbone={backbone}", f"model.input_size={size}",
                                     f"train.data_size={size + size // 8}", f"train.batch_size={batch_size}",
                                     "train.epochs=2", "train.val_fraction=0", "train.negatives=random"])
    result = fit(cfg, random_split(n_triplets, cfg.train.data_size), None, device=device, progress=False)
    seconds = result.history[-1]["epoch_time_s"]
    return {"input_size": size, "seconds": seconds, "triplets_per_s": n_triplets / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(INPUT_SIZES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--triplets", type=int, default=256, help="triplets per timed epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"device {args.device}, batch {args.batch_size}, book preset with random negatives")
    print(f"{'backbone':<14}{'input':>6}{'triplets/s':>12}{'s/epoch':>9}")
    for name in args.backbones:
        r = bench(name, args.triplets, args.batch_size, args.device)
        print(f"{name:<14}{r['input_size']:>6}{r['triplets_per_s']:>12.1f}{r['seconds']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
