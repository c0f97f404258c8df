"""Seed summaries and the paired seed-and-query bootstrap behind the chapters' verdicts."""
from __future__ import annotations

import numpy as np
import pytest

from sbir_core.compare import mean_interval, mean_std, paired_bootstrap, pm, side_of


def test_mean_std_and_format():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert pm([0.10, 0.20, 0.30]) == "20.0 ± 10.0"
    with pytest.raises(ValueError):
        mean_std([])


def hits(rate: float, seeds: int = 3, queries: int = 300, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(size=(seeds, queries)) < rate).astype(float)


def test_a_clear_gain_is_reproduced_and_its_mirror_contradicted():
    base = hits(0.3)
    better = np.maximum(base, hits(0.3, seed=1))  # every base hit kept, many added: about +0.2
    v = paired_bootstrap(better, base)
    assert v.label == "reproduced" and v.low > 0.1 and v.delta == pytest.approx((better - base).mean())
    assert paired_bootstrap(base, better).label == "contradicted"
    assert paired_bootstrap(base, better, direction=-1).label == "reproduced"
    assert side_of(v) == "in the claimed direction"


def test_noise_is_not_resolved_and_names_no_direction():
    v = paired_bootstrap(hits(0.3, seed=2), hits(0.3, seed=3))
    assert v.label == "not resolved" and v.low < 0 < v.high
    assert side_of(v) == "not resolved"


def test_few_queries_widen_the_interval():
    """The same per-seed gain on 20 queries stays unresolved where it is resolved on 2000: the test set counts."""
    def pair(n):
        a = np.zeros((3, n)); a[:, : n // 10] = 1  # 10% hits
        b = np.zeros((3, n)); b[:, : n // 20] = 1  # 5% hits, the same in every seed: zero seed spread
        return a, b
    assert paired_bootstrap(*pair(20)).label == "not resolved"
    assert paired_bootstrap(*pair(2000)).label == "reproduced"


def test_seed_disagreement_widens_the_interval():
    a = np.zeros((3, 400)); a[0, :200] = 1  # one seed gains 50 points, two lose a little
    b = np.zeros((3, 400)); b[1:, :20] = 1
    v = paired_bootstrap(a, b)
    assert v.delta > 0 and v.label == "not resolved"


def test_deterministic_and_validated():
    a, b = hits(0.4), hits(0.35, seed=5)
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:, :10])
    with pytest.raises(ValueError):
        paired_bootstrap(a, b, direction=0)
    with pytest.raises(ValueError):
        paired_bootstrap(a[0], b[0])


def test_mean_interval_holds_the_mean_and_is_the_difference_interval_against_zero():
    """A variant's interval of its mean acc@1 (experiments' records) narrows with queries, and is exactly
    paired_bootstrap's interval of its difference from a variant that never hits."""
    a = hits(0.3)
    low, high = mean_interval(a)
    assert low < a.mean() < high
    v = paired_bootstrap(a, np.zeros_like(a))
    assert (low, high) == (v.low, v.high)
    wide = mean_interval(a[:, :30])
    assert wide[1] - wide[0] > high - low
    with pytest.raises(ValueError, match="level"):
        mean_interval(a, level=1.0)
    with pytest.raises(ValueError, match="at least 2 queries"):
        mean_interval(a[:, :1])
