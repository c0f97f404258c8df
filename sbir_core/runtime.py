"""Device choice, seeding, worker processes and atomic file writes: the few things every module needs."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


def get_device(name: str | None = "auto") -> torch.device:
    """Return ``cuda`` when present (for ``"auto"`` or ``None``), else the CPU; an explicit name is honoured."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) from one integer.

    Kernels are a separate matter: ``sbir_core.train.fit`` switches deterministic algorithms on for its run (and
    restores the setting afterwards), so that one seed gives the same weights run after run on one machine.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def progress_disabled(progress: bool = True) -> bool:
    """Whether a progress bar should stay hidden: ``progress=False``, or ``TQDM_DISABLE`` set (as ``make`` does).

    Passed to tqdm explicitly, because ``tqdm.auto`` in a notebook builds its widget before it reads the variable,
    and the book would store a frozen bar."""
    return not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def usable_cpus() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def map_in_processes(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, desc: str,
                     progress: bool = True) -> list[Any]:
    """``[fn(*args) for args in jobs]`` in ``workers`` spawned processes (fork is unsafe once torch has started its
    threads), with a progress bar as jobs finish; the first failed job's error is raised as soon as it is seen."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(fn, *args) for args in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"{desc} ({workers} processes)",
                           leave=False, disable=progress_disabled(progress)):
            future.result()
        return [future.result() for future in futures]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing half-written is ever left at ``path``: on error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
