"""Retrieval metrics for FG-SBIR: the rank of the true photo, acc@K, mean rank, ranking percentile.

Tie convention (as in the official Bhunia-group evaluation code): the rank of the true photo is the number of gallery
photos whose distance to the query is LESS THAN OR EQUAL TO the true photo's distance. The true photo counts itself,
so ranks run from 1 (best) to N (gallery size), and every tie counts against the query: a model that maps everything
to one point gets rank N, never rank 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def true_match_ranks(distances: ArrayLike, positives: ArrayLike) -> np.ndarray:
    """Rank (1 = best) of each query's true photo. ``distances`` (n, N), ``positives`` (n,) gallery indices.

    ``rank[i] = #{j : d[i, j] <= d[i, positives[i]]}``: ties count against the query.
    """
    d = _as_tensor(distances)
    pos = _as_tensor(positives).long().to(d.device)
    if d.ndim != 2 or pos.shape != (d.shape[0],):
        raise ValueError(f"need distances (n, N) and positives (n,), got {tuple(d.shape)} and {tuple(pos.shape)}")
    if d.shape[0] and (pos.min() < 0 or pos.max() >= d.shape[1]):
        raise ValueError(f"positives must index the gallery of {d.shape[1]} photos")
    if torch.isnan(d).any():
        raise ValueError("distances contain NaN")
    true_d = d.gather(1, pos[:, None])
    return (d <= true_d).sum(1).cpu().numpy().astype(np.int64)


def acc_at_k(ranks: ArrayLike, k: int) -> float:
    """Share of queries whose true photo is in the top ``k`` (acc@K, Yu et al. CVPR 2016)."""
    return float((np.asarray(ranks) <= k).mean())


def ranking_percentile(ranks: ArrayLike, gallery_size: int) -> np.ndarray:
    """``(N - rank) / (N - 1)``: 1 for rank 1, 0 for rank N (Bhunia et al. CVPR 2020, m@A)."""
    if gallery_size < 2:
        raise ValueError("the ranking percentile needs a gallery of at least 2 photos")
    return (gallery_size - np.asarray(ranks, dtype=np.float64)) / (gallery_size - 1)


def retrieval_metrics(distances: ArrayLike, positives: ArrayLike, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """acc@K for each K, mean rank, mean ranking percentile, mean reciprocal rank, and the query/gallery counts."""
    ranks = true_match_ranks(distances, positives)
    n_gallery = int(_as_tensor(distances).shape[1])
    out: dict[str, float] = {f"acc@{k}": acc_at_k(ranks, k) for k in ks}
    out["mean_rank"] = float(ranks.mean())
    out["percentile"] = float(ranking_percentile(ranks, n_gallery).mean()) if n_gallery > 1 else 1.0
    out["mrr"] = float((1.0 / ranks).mean())
    out["n_queries"] = int(ranks.size)
    out["gallery_size"] = n_gallery
    return out


def sketch_needed(ranks: ArrayLike, top: int = 5) -> np.ndarray:
    """Per query, the share of the sketch drawn when the true photo first enters the top ``top`` and stays there to
    the end: ``(t + 1) / T`` for the first such step index t of ``ranks`` (Q, T); 1.0 if it never does."""
    r = np.asarray(ranks.cpu() if isinstance(ranks, torch.Tensor) else ranks)
    steps = r.shape[1]
    stays = np.flip(np.logical_and.accumulate(np.flip(r <= top, 1), axis=1), 1)  # in the top from step t to the end
    first = np.where(stays.any(1), stays.argmax(1), steps - 1)  # never: the whole sketch
    return (first + 1) / steps


def onthefly_metrics(ranks: ArrayLike, gallery_size: int, top: int = 5) -> dict[str, object]:
    """Metrics of on-the-fly retrieval (Bhunia et al., CVPR 2020, Sec. 4) from ``ranks`` (Q, T): the 1-based rank of
    each query's true photo after each of T equally spaced completion steps (the last one is the whole sketch).

    * ``m@A``: area under the ranking percentile ``(N - rank) / (N - 1)`` against the fraction of sketch drawn;
    * ``m@B``: the same area under ``1 / rank``.

      Both integrate by the right-endpoint rectangle rule on the fractions 1/T, 2/T, ..., 1, i.e. the mean over the
      T steps (then over the queries), as the official code's ``meanIOU`` does; they are fractions, not percentages.
    * ``A@1``, ``A@5``, ``A@10``: acc@K at the last step (the complete sketch);
    * ``mean_rank_per_step``: T floats;
    * ``sketch_needed``: the mean share of the sketch drawn when the true photo first enters the top ``top`` (5) and
      stays there to the end, ``(t + 1) / T`` for the first such step index t, 1.0 if it never does;
      ``sketch_saved`` is the mean of ``1 - share`` (0 for a query that needs the whole sketch or never gets there).
    """
    r = np.asarray(ranks.cpu() if isinstance(ranks, torch.Tensor) else ranks)
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(f"ranks must be a non-empty (queries, steps) array, got shape {r.shape}")
    if r.min() < 1 or r.max() > gallery_size:
        raise ValueError(f"ranks must lie in 1..{gallery_size} (the gallery size)")
    needed = sketch_needed(r, top)
    return {
        "m@A": float(ranking_percentile(r, gallery_size).mean()),
        "m@B": float((1.0 / r).mean()),
        **{f"A@{k}": acc_at_k(r[:, -1], k) for k in (1, 5, 10)},
        "mean_rank_per_step": [float(x) for x in r.mean(0)],
        "sketch_needed": float(needed.mean()),
        "sketch_saved": float((1.0 - needed).mean()),
    }
