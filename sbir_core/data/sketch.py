"""Vector sketches in the SketchX convention, and the stroke statistics used to compare datasets.

A sketch is an ``(N, 3)`` float64 array of ABSOLUTE ``x, y`` coordinates on a 256 x 256 frame and a pen state ``p``
that is 1 on the LAST point of each stroke (the pen is lifted after it), as in the QMUL-Shoe/Chair-V2 pickles
(Yu et al., CVPR 2016; Bhunia et al., CVPR 2020).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from sbir_core.errors import DataError

CANVAS = 256  # the frame of the coordinates
LONGER_SIDE = 190.0  # every ChairV2 sketch is scaled so that its longer side spans 190 px, centred in the frame


@dataclass(frozen=True)
class Sketch:
    """One vector sketch: ``points[:, :2]`` absolute x, y; ``points[:, 2]`` pen state (1 = last point of a stroke)."""

    points: np.ndarray

    @classmethod
    def from_array(cls, array: object, source: str | os.PathLike | None = None) -> "Sketch":
        """Validate ``array`` (shape ``(N, 3)``, N >= 1, finite, pen in {0, 1}) and return a float64 :class:`Sketch`.

        The last point always ends a stroke. Anything else raises :class:`DataError` naming ``source``.
        """
        points = np.asarray(array)
        if points.ndim != 2 or points.shape[1] != 3:
            raise DataError(f"sketch must be an (N, 3) array, got shape {points.shape}", source)
        if len(points) == 0:
            raise DataError("empty sketch (no points)", source)
        if not np.issubdtype(points.dtype, np.number):
            raise DataError(f"sketch has non-numeric dtype {points.dtype}", source)
        points = points.astype(np.float64, copy=True)
        if not np.isfinite(points).all():
            raise DataError("sketch has NaN or infinite coordinates", source)
        if not np.isin(points[:, 2], (0.0, 1.0)).all():
            raise DataError("pen state must be 0 or 1", source)
        points[-1, 2] = 1.0
        return cls(points)

    @classmethod
    def from_strokes(cls, strokes: Sequence[np.ndarray]) -> "Sketch":
        """Build a sketch from a list of ``(n_i, 2)`` polylines (drawing order = list order)."""
        parts = []
        for stroke in strokes:
            stroke = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
            pen = np.zeros((len(stroke), 1))
            pen[-1] = 1.0
            parts.append(np.hstack([stroke, pen]))
        return cls.from_array(np.concatenate(parts) if parts else np.zeros((0, 3)))

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_strokes(self) -> int:
        return int(self.points[:, 2].sum())

    def strokes(self) -> list[np.ndarray]:
        """The strokes as ``(n_i, 2)`` arrays, in drawing order."""
        ends = np.flatnonzero(self.points[:, 2]) + 1
        return np.split(self.points[:, :2], ends)[:-1]

    def stroke_lengths(self) -> np.ndarray:
        """Ink length (sum of segment lengths, px) of each stroke."""
        return np.array([np.linalg.norm(np.diff(s, axis=0), axis=1).sum() for s in self.strokes()])


def normalise(points: np.ndarray, longer_side: float = LONGER_SIDE, canvas: int = CANVAS) -> np.ndarray:
    """Scale ``(N, 2|3)`` points so that the bounding box's longer side spans ``longer_side``, centred in ``canvas``."""
    out = np.array(points, dtype=np.float64, copy=True)
    lo, hi = out[:, :2].min(0), out[:, :2].max(0)
    scale = longer_side / max(float((hi - lo).max()), 1e-9)
    out[:, :2] = (out[:, :2] - (lo + hi) / 2) * scale + canvas / 2
    return out


def resample(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a ``(n, 2)`` polyline at (about) equal arc-length ``spacing``, keeping both end points."""
    polyline = np.asarray(polyline, dtype=np.float64)
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 1e-9:
        return polyline[:1].copy()
    n = max(int(round(arc[-1] / spacing)), 1) + 1
    t = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(t, arc, polyline[:, 0]), np.interp(t, arc, polyline[:, 1])], axis=1)


def stroke_statistics(sketches: Iterable[Sketch], n_strokes_share: int = 10) -> dict[str, object]:
    """The statistics the data README gives for real ChairV2, for any list of sketches.

    Keys: ``points_mean/median/min/max``, ``strokes_mean/median``, ``strokes_at_15`` (sketches with exactly 15),
    ``spacing_median`` (px between consecutive points of a stroke), ``longer_side_mean``, ``ink_share`` (mean share
    of a sketch's ink in stroke 1, 2, ... over the sketches that have that stroke: coarse-to-fine order) and
    ``area_at_30pct`` (median bounding-box area of the first 30 % of points relative to the whole sketch's).
    """
    sketches = list(sketches)
    if not sketches:
        raise DataError("no sketches to measure")
    n_points = np.array([s.n_points for s in sketches])
    n_strokes = np.array([s.n_strokes for s in sketches])
    spacings, longer, areas = [], [], []
    share_sum, share_count = np.zeros(n_strokes_share), np.zeros(n_strokes_share)
    for s in sketches:
        xy = s.points[:, :2]
        for stroke in s.strokes():
            spacings.append(np.linalg.norm(np.diff(stroke, axis=0), axis=1))
        extent = xy.max(0) - xy.min(0)
        longer.append(extent.max())
        lengths = s.stroke_lengths()[:n_strokes_share]
        if lengths.sum() > 0:
            share = lengths / s.stroke_lengths().sum()
            share_sum[: len(share)] += share
            share_count[: len(share)] += 1
        head = xy[: max(int(np.ceil(0.3 * len(xy))), 1)]
        head_extent = head.max(0) - head.min(0)
        areas.append(float(np.prod(head_extent) / max(np.prod(extent), 1e-9)))
    spacing = np.concatenate(spacings) if spacings else np.zeros(1)
    return {
        "sketches": len(sketches),
        "points_mean": float(n_points.mean()),
        "points_median": float(np.median(n_points)),
        "points_min": int(n_points.min()),
        "points_max": int(n_points.max()),
        "strokes_mean": float(n_strokes.mean()),
        "strokes_median": float(np.median(n_strokes)),
        "strokes_at_15": int((n_strokes == 15).sum()),
        "spacing_median": float(np.median(spacing)),
        "longer_side_mean": float(np.mean(longer)),
        "ink_share": [float(x) for x in share_sum / np.maximum(share_count, 1)],
        "area_at_30pct": float(np.median(areas)),
    }
