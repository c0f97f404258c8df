"""Comparing training runs over seeds: mean and spread, and a verdict on a claimed difference.

The book's ablations train every variant with the same few seeds, so two variants are compared seed by seed (a
paired comparison): ``verdict`` calls a claimed improvement *reproduced* when the mean paired difference lies in the
claimed direction by more than ``z`` standard errors, *contradicted* when it lies that far the other way, and
*not resolved* otherwise. With three seeds this is a coarse screen, not a significance test. Seeds vary the
training but not the test set, so ``min_stderr`` can set a floor from the test set's own sampling noise (e.g.
``binomial_stderr(accuracy, n_queries)``): without it, three identical per-seed differences of a single query would
count as a certain effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def pm(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of ``values * scale`` (percentages by default)."""
    m, s = mean_std(np.asarray(values, dtype=float) * scale)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


@dataclass(frozen=True)
class Verdict:
    delta: float  # mean of (a - b) over paired seeds
    stderr: float  # standard error of that mean
    label: str  # "reproduced", "contradicted" or "not resolved"


def binomial_stderr(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` queries: ``sqrt(p (1 - p) / n)``."""
    if n < 1:
        raise ValueError(f"binomial_stderr needs n >= 1, got {n}")
    return float(np.sqrt(p * (1.0 - p) / n))


def verdict(a: Sequence[float], b: Sequence[float], direction: int = 1, z: float = 2.0,
            min_stderr: float = 0.0) -> Verdict:
    """Does ``a`` exceed ``b`` (``direction=1``) or fall below it (``-1``), seed by seed, by more than ``z`` s.e.?

    The standard error is that of the mean paired difference, but at least ``min_stderr``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"verdict needs two paired samples of at least 2 seeds, got {a.size} and {b.size}")
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction}")
    diff = a - b
    delta = float(diff.mean())
    stderr = max(float(diff.std(ddof=1) / np.sqrt(diff.size)), float(min_stderr))
    if direction * delta > z * stderr:
        label = "reproduced"
    elif direction * delta < -z * stderr:
        label = "contradicted"
    else:
        label = "not resolved"
    return Verdict(delta, stderr, label)
