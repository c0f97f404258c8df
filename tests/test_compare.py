"""Seed summaries and paired verdicts used by the ablation chapters."""
from __future__ import annotations

import pytest

from sbir_core.compare import binomial_stderr, mean_std, pm, verdict


def test_mean_std_and_format():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert pm([0.10, 0.20, 0.30]) == "20.0 ± 10.0"
    with pytest.raises(ValueError):
        mean_std([])


def test_verdicts_are_paired_by_seed():
    base = [0.10, 0.30, 0.50]  # large spread between seeds ...
    better = [0.12, 0.32, 0.53]  # ... but a consistent gain within each seed
    v = verdict(better, base)
    assert v.label == "reproduced" and v.delta == pytest.approx(0.0233, abs=1e-3)
    assert verdict(base, better).label == "contradicted"
    assert verdict(base, better, direction=-1).label == "reproduced"
    assert verdict([0.1, 0.3, 0.2], [0.2, 0.2, 0.2]).label == "not resolved"
    with pytest.raises(ValueError):
        verdict([0.1], [0.2])
    with pytest.raises(ValueError):
        verdict([0.1, 0.2], [0.2, 0.3], direction=0)


def test_stderr_floor_keeps_identical_tiny_differences_unresolved():
    base, other = [0.040, 0.050, 0.060], [0.038, 0.048, 0.058]  # the same two-query loss in every seed
    assert verdict(other, base, direction=-1).label == "reproduced"  # zero spread: any difference looks certain
    floor = binomial_stderr(0.05, 639)
    assert floor == pytest.approx((0.05 * 0.95 / 639) ** 0.5)
    v = verdict(other, base, direction=-1, min_stderr=floor)
    assert v.label == "not resolved" and v.stderr == floor
    with pytest.raises(ValueError):
        binomial_stderr(0.5, 0)
