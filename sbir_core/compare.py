"""Comparing training runs over seeds: mean and spread, and a verdict on a claimed difference.

The book's ablations train every variant with the same few seeds and test every model on the same queries, so two
variants are compared seed by seed and query by query. :func:`paired_bootstrap` resamples both levels, the seeds
(the training noise) and then the test queries (the test set's sampling noise), and gives a percentile interval for
the mean paired difference. A claimed difference is *reproduced* when the whole interval lies on the claimed side of
zero, *contradicted* when it lies on the other side, and *not resolved* otherwise. The interval is right for any
number of seeds in the sense that it widens as they disagree, but with three seeds the seed level has only ten
distinct resamples, so it is a screen, not an exact test; the chapters say so.
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
    delta: float  # mean of (a - b) over seeds and queries
    low: float  # the interval of that mean (level ``level``)
    high: float
    label: str  # "reproduced", "contradicted" or "not resolved"
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        return self.label != "not resolved"

    def describe(self, scale: float = 100.0, unit: str = " points") -> str:
        """``"+1.23 points (95% interval -0.40 to +2.90)"``."""
        return (f"{scale * self.delta:+.2f}{unit} ({100 * self.level:.0f}% interval {scale * self.low:+.2f} "
                f"to {scale * self.high:+.2f})")


def mean_interval(x: np.ndarray, n_boot: int = 4000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The percentile interval of the mean of ``x``, a (seeds, queries) array of per-query scores, resampling the
    seeds and then the queries (the same queries for every seed), as :func:`paired_bootstrap` does for a difference.
    The bootstrap draws are fixed by ``seed``."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"mean_interval needs a (seeds, queries) array with at least 2 queries, got {x.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    n_seeds, n_queries = x.shape
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, n_queries, (n_boot, n_queries))
    seeds = rng.integers(0, n_seeds, (n_boot, n_seeds))
    per_seed = x[:, queries].mean(axis=2)  # (seeds, n_boot): each seed's mean over the resampled queries
    boot = per_seed[seeds, np.arange(n_boot)[:, None]].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, direction: int = 1, n_boot: int = 4000, level: float = 0.95,
                     seed: int = 0) -> Verdict:
    """Is ``a`` above ``b`` (``direction=1``) or below it (``-1``)? See the module docstring.

    ``a`` and ``b`` are (seeds, queries) arrays of per-query scores (e.g. 1 where the true photo is in the top 10),
    row ``s`` of both from models trained with the same seed. The bootstrap draws are fixed by ``seed``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"paired_bootstrap needs two (seeds, queries) arrays of one shape with at least 2 queries, "
                         f"got {a.shape} and {b.shape}")
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction}")
    diff = a - b
    low, high = mean_interval(diff, n_boot, level, seed)
    if direction * low > 0 and direction * high > 0:
        label = "reproduced"
    elif direction * low < 0 and direction * high < 0:
        label = "contradicted"
    else:
        label = "not resolved"
    return Verdict(float(diff.mean()), float(low), float(high), label, level)


def side_of(v: Verdict) -> str:
    """Words for a verdict's direction, named only where the interval resolves it."""
    if not v.resolved:
        return "not resolved"
    return "in the claimed direction" if v.label == "reproduced" else "against the claimed direction"


__all__ = ["Verdict", "mean_interval", "mean_std", "paired_bootstrap", "pm", "side_of"]
