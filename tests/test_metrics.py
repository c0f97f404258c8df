"""Retrieval metrics against hand-computed cases, including the tie convention."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sbir_core.metrics import acc_at_k, ranking_percentile, retrieval_metrics, true_match_ranks

D = np.array([
    [0.1, 0.5, 0.9, 0.3],  # true 0: nothing closer → rank 1
    [0.2, 0.4, 0.1, 0.3],  # true 1 (0.4): 0.2, 0.1, 0.3 closer → rank 4
    [0.5, 0.5, 0.5, 0.7],  # true 2 tied with 0 and 1 → ties count against: rank 3
    [0.9, 0.8, 0.2, 0.6],  # true 3 (0.6): 0.2 closer → rank 2
])
POS = np.array([0, 1, 2, 3])


def test_ranks_by_hand_with_ties_against_the_query():
    np.testing.assert_array_equal(true_match_ranks(D, POS), [1, 4, 3, 2])


def test_constant_distances_give_the_worst_rank():
    assert true_match_ranks(np.zeros((3, 5)), np.array([0, 2, 4])).tolist() == [5, 5, 5]


def test_torch_and_numpy_agree_and_match_a_loop():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 4, size=(20, 9)).astype(np.float32)  # many ties
    pos = rng.integers(0, 9, size=20)
    loop = [sum(d[i, j] <= d[i, pos[i]] for j in range(9)) for i in range(20)]
    np.testing.assert_array_equal(true_match_ranks(d, pos), loop)
    np.testing.assert_array_equal(true_match_ranks(torch.from_numpy(d), torch.from_numpy(pos)), loop)


def test_acc_mean_rank_and_percentile_by_hand():
    m = retrieval_metrics(D, POS, ks=(1, 2, 3))
    assert m["acc@1"] == pytest.approx(0.25)
    assert m["acc@2"] == pytest.approx(0.5)
    assert m["acc@3"] == pytest.approx(0.75)
    assert m["mean_rank"] == pytest.approx(2.5)
    # percentiles (4 - r) / 3 for r = 1, 4, 3, 2: 1, 0, 1/3, 2/3 → mean 0.5
    assert m["percentile"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 4 + 1 / 3 + 1 / 2) / 4)
    assert (m["n_queries"], m["gallery_size"]) == (4, 4)
    assert acc_at_k([1, 1, 10, 11], 10) == pytest.approx(0.75)
    np.testing.assert_allclose(ranking_percentile([1, 11], 11), [1.0, 0.0])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="positives"):
        true_match_ranks(D, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="need distances"):
        true_match_ranks(D, np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        true_match_ranks(np.full((1, 2), np.nan), np.array([0]))
