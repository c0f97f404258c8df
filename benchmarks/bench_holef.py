"""HOLEF energy: the expanded bilinear form against the naive k x k outer subtraction.

    python benchmarks/bench_holef.py                    # k = 512 and 2560, batch 16, 1 CPU thread
    python benchmarks/bench_holef.py --batch 8 --dims 512 2560 --repeats 5

For each feature size k it reports, per batch of B (anchor, positive) pairs with a learnable k x k W:
time of forward + backward (median of the repeats), the peak extra resident memory of one forward + backward (measured
in a fresh child process from the Linux resident high-water mark, so that nothing cached by an earlier run hides
it; on CUDA, torch's peak allocation; a few hundred KiB is within the allocator's slack), and the
largest absolute / relative difference between the two energies in float32 and in float64.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from sbir_core.losses import holef_energy, holef_energy_naive

FORMS = {"fast": holef_energy, "naive": holef_energy_naive}


def _inputs(batch: int, dim: int, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0):
    """L2-normalised embeddings and W = I + small noise, as during training."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
    y = torch.nn.functional.normalize(torch.randn(batch, dim, generator=g, dtype=dtype), dim=1)
    w = torch.eye(dim, dtype=dtype) + 0.01 * torch.randn(dim, dim, generator=g, dtype=dtype)
    return x.to(device), y.to(device), w.to(device)


def _step(form: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
    """One forward + backward through the energy (gradients for x, y and W, as in training)."""
    x, y, w = (t.detach().requires_grad_(True) for t in (x, y, w))
    FORMS[form](x, y, w).sum().backward()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(form: str, batch: int, dim: int, device: torch.device, repeats: int) -> float:
    """Median seconds of one forward + backward."""
    x, y, w = _inputs(batch, dim, device)
    _step(form, x, y, w)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        _step(form, x, y, w)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_child(form: str, batch: int, dim: int, device_name: str) -> int:
    """Run in a fresh process: the extra peak memory (bytes) of one forward + backward."""
    device = torch.device(device_name)
    x, y, w = _inputs(batch, dim, device)
    _step(form, *_inputs(2, 8, device))  # load the kernels (on a tiny problem) before the baseline is taken
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(form, x, y, w)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the resident high-water mark (VmHWM) to VmRSS
    base = _status_kib("VmRSS")
    _step(form, x, y, w)
    return (_status_kib("VmHWM") - base) * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; CPU peak memory needs Linux")


def peak_memory(form: str, batch: int, dim: int, device: torch.device) -> int:
    code = (
        f"import sys, torch; torch.set_num_threads(1); sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from bench_holef import peak_memory_child; "
        f"print(peak_memory_child({form!r}, {batch}, {dim}, {str(device)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def agreement(batch: int, dim: int, device: torch.device, dtype: torch.dtype) -> tuple[float, float]:
    """Largest absolute and relative difference between the two energies (and their W gradients)."""
    x, y, w = _inputs(batch, dim, device, dtype=dtype, seed=1)
    values, grads = [], []
    for form in FORMS:
        wg = w.clone().requires_grad_(True)
        energy = FORMS[form](x, y, wg)
        energy.sum().backward()
        values.append(energy.detach())
        grads.append(wg.grad)
    abs_diff = max((values[0] - values[1]).abs().max().item(), (grads[0] - grads[1]).abs().max().item())
    rel_diff = ((values[0] - values[1]).abs() / values[1].abs()).max().item()
    return abs_diff, rel_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 2560])
    parser.add_argument("--batch", type=int, default=16, help="pairs per batch (IJCV trains with batch 16)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    for dim in args.dims:
        row = {"k": dim, "batch": args.batch, "device": str(device), "threads": args.threads,
               "outer_subtraction_mib": args.batch * dim * dim * 4 / 2**20}
        for form in FORMS:
            row[f"{form}_ms"] = 1e3 * time_step(form, args.batch, dim, device, args.repeats)
            row[f"{form}_peak_mib"] = peak_memory(form, args.batch, dim, device) / 2**20
        row["max_abs_diff_f32"], row["max_rel_diff_f32"] = agreement(args.batch, dim, device, torch.float32)
        row["max_abs_diff_f64"], row["max_rel_diff_f64"] = agreement(args.batch, dim, device, torch.float64)
        rows.append(row)

    print(f"HOLEF energy, forward + backward per batch of {args.batch} pairs on {device} ({args.threads} thread(s))\n")
    print("| k | fast ms | naive ms | speed-up | fast peak MiB | naive peak MiB | one k*k*B tensor MiB "
          "| max abs diff f32 | max rel diff f32 | max abs diff f64 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['k']} | {r['fast_ms']:.2f} | {r['naive_ms']:.1f} | {r['naive_ms'] / r['fast_ms']:.0f}x "
              f"| {r['fast_peak_mib']:.1f} | {r['naive_peak_mib']:.0f} | {r['outer_subtraction_mib']:.0f} "
              f"| {r['max_abs_diff_f32']:.1e} | {r['max_rel_diff_f32']:.1e} | {r['max_abs_diff_f64']:.1e} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
