"""One training step of the book's models (the compact CNN at 64 px, in-batch negatives): milliseconds per step by
memory layout and thread count, on this machine.

The trainer runs its convolutions channels-last; this measures what that and the thread count are worth. A step is
32 sketches and their 32 photos through the shared network, the 32 x 31 in-batch triplets, backward and an Adam step.

    python benchmarks/bench_step.py                    # triplet-sn and attention-fusion, 1 and 2 threads
    python benchmarks/bench_step.py --threads 2 --steps 40
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from sbir_core.config import override, preset
from sbir_core.losses import build_loss
from sbir_core.models import build_model
from sbir_core.train import in_batch_pairs


def step_ms(model_name: str, channels_last: bool, threads: int, steps: int, warmup: int = 5) -> float:
    """As the trainer runs: deterministic algorithms on, without their fill of new tensors."""
    import torch.utils.deterministic as det

    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = False
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = override(preset("book"), [f"model.name={model_name}"])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(cfg.model).to(memory_format=layout)
    loss_fn = build_loss(cfg.loss, model.embed_dim)
    opt = torch.optim.Adam(model.parameters(), cfg.train.lr)
    size, batch = cfg.model.input_size, cfg.train.batch_size
    sketches = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    photos = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    i, j = in_batch_pairs(torch.arange(batch))
    for k in range(warmup + steps):
        if k == warmup:
            start = time.perf_counter()
        ea, ep = model.embed(sketches, photos)
        loss = loss_fn(ea[i], ep[i], ep[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["triplet-sn", "attention-fusion"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    print("| model | threads | contiguous (ms/step) | channels-last (ms/step) | speed-up |\n|---|---|---|---|---|")
    for name in args.models:
        for threads in args.threads:
            plain, cl = (step_ms(name, layout, threads, args.steps) for layout in (False, True))
            print(f"| {name} | {threads} | {plain:.1f} | {cl:.1f} | {plain / cl:.2f}x |")


if __name__ == "__main__":
    main()
