"""2-D primitives for the part-based object models of the synthetic benchmark.

An object instance is a :class:`Shape`: a list of named :class:`Part` s, each a few polylines in a canonical frame
(y pointing DOWN, like image rows). A part's ``level`` orders the drawing coarse to fine (0: the silhouette,
1: major parts, 2: details) and its ``fill`` names the colour role it gets in the photo (None: drawn as a line).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Part:
    """A nameable part: polylines (``(n, 2)``; closed when first point == last point), level, photo style."""

    name: str
    level: int
    paths: list[np.ndarray]
    fill: str | None = "body"  # colour role of the filled region in the photo; None: only a line
    z: int = 0  # photo layering (higher is painted later)
    width: float = 0.012  # line width (canonical units) for line parts in the photo
    in_sketch: bool = True  # False: a region only the photo shows (e.g. the sole's colour), never drawn
    strips: bool = False  # every path is a thin strip around a spine (legs, rails): may be drawn as one line

    def bounds(self) -> np.ndarray:
        pts = np.concatenate(self.paths)
        return np.concatenate([pts.min(0), pts.max(0)])


@dataclass
class Shape:
    """One object instance: its parts and the attributes that generated it."""

    category: str
    parts: list[Part]
    attributes: dict[str, object] = field(default_factory=dict)

    def points(self) -> np.ndarray:
        return np.concatenate([p for part in self.parts for p in part.paths])

    def transformed(self, matrix: np.ndarray, offset: np.ndarray) -> "Shape":
        """A copy with every point mapped by ``x @ matrix.T + offset``."""
        parts = [Part(p.name, p.level, [q @ matrix.T + offset for q in p.paths], p.fill, p.z, p.width, p.in_sketch,
                      p.strips)
                 for p in self.parts]
        return Shape(self.category, parts, dict(self.attributes))


def close(path: np.ndarray) -> np.ndarray:
    path = np.asarray(path, dtype=np.float64)
    return path if is_closed(path) else np.vstack([path, path[:1]])


def is_closed(path: np.ndarray) -> bool:
    return len(path) > 2 and abs(path[0, 0] - path[-1, 0]) + abs(path[0, 1] - path[-1, 1]) < 1e-9


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48, start: float = 0.0,
            stop: float = 2 * np.pi) -> np.ndarray:
    """An ellipse (closed when the angle range is a full turn) or an elliptic arc."""
    full = np.isclose(stop - start, 2 * np.pi)
    t = np.linspace(start, stop, n + 1 if full else n)
    out = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)
    if full:
        out[-1] = out[0]
    return out


def superellipse(cx: float, cy: float, rx: float, ry: float, power: float, n: int = 64) -> np.ndarray:
    """|x/rx|^p + |y/ry|^p = 1: p = 2 an ellipse, large p a rounded rectangle, p < 2 a pinched diamond."""
    t = np.linspace(0, 2 * np.pi, n + 1)
    c, s = np.cos(t), np.sin(t)
    out = np.stack([cx + rx * np.sign(c) * np.abs(c) ** (2 / power), cy + ry * np.sign(s) * np.abs(s) ** (2 / power)], 1)
    out[-1] = out[0]
    return out


def rect(x0: float, y0: float, x1: float, y1: float, radius: float = 0.0, n_corner: int = 5) -> np.ndarray:
    """A closed axis-aligned rectangle, optionally with rounded corners."""
    r = min(radius, abs(x1 - x0) / 2, abs(y1 - y0) / 2)
    if r <= 0:
        return close(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64))
    pts = []
    for cx, cy, a0 in ((x1 - r, y0 + r, -np.pi / 2), (x1 - r, y1 - r, 0.0), (x0 + r, y1 - r, np.pi / 2),
                       (x0 + r, y0 + r, np.pi)):
        t = np.linspace(a0, a0 + np.pi / 2, n_corner)
        pts.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1))
    return close(np.concatenate(pts))


def poly(*points: tuple[float, float], closed: bool = False) -> np.ndarray:
    out = np.array(points, dtype=np.float64)
    return close(out) if closed else out


def smooth(control: np.ndarray, n: int = 12, closed: bool = False) -> np.ndarray:
    """A Catmull-Rom spline through the control points (``n`` samples per span)."""
    p = np.asarray(control, dtype=np.float64)
    if closed:
        p = p[:-1] if np.allclose(p[0], p[-1]) else p
        ext = np.vstack([p[-1:], p, p[:2]])
        spans = len(p)
    else:
        ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
        spans = len(p) - 1
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    out = []
    for i in range(spans):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(ext[spans + 1][None] if not closed else ext[1][None])
    return np.concatenate(out)


def mirror_x(path: np.ndarray, axis: float) -> np.ndarray:
    out = np.array(path, dtype=np.float64, copy=True)
    out[:, 0] = 2 * axis - out[:, 0]
    return out


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def densify(path: np.ndarray, step: float) -> np.ndarray:
    """Insert points so that no segment is longer than ``step`` (vertices are kept)."""
    path = np.asarray(path, dtype=np.float64)
    if len(path) < 2:
        return path
    seg = np.diff(path, axis=0)
    k = np.maximum(np.ceil(np.linalg.norm(seg, axis=1) / step).astype(np.int64), 1)
    which = np.repeat(np.arange(len(seg)), k)
    frac = (np.arange(len(which)) - np.repeat(np.cumsum(k) - k, k) + 1) / k[which]
    return np.vstack([path[:1], path[which] + seg[which] * frac[:, None]])


def arc_length(path: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())


# --- a 3/4 view of simple 3-D parts (oblique projection: depth z goes up and to the right) ---------------------------
DEPTH = np.array([0.42, 0.26])


def project(points3d: np.ndarray) -> np.ndarray:
    """Oblique projection of ``(n, 3)`` points (x right, y up, z away from the viewer) to ``(n, 2)``."""
    p = np.asarray(points3d, dtype=np.float64).reshape(-1, 3)
    return p[:, :2] + p[:, 2:3] * DEPTH


def box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> list[np.ndarray]:
    """A box as drawn in the oblique view: its hexagonal outline, the two inner edges of its top face, and the
    inner vertical edge of its front-right corner."""
    corners = {(i, j, k): project([(x0, x1)[i], (y0, y1)[j], (z0, z1)[k]])[0]
               for i in (0, 1) for j in (0, 1) for k in (0, 1)}
    outline = [corners[c] for c in ((0, 0, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1), (0, 1, 1), (0, 1, 0))]
    hub = corners[(1, 1, 0)]
    return [close(np.array(outline)), np.array([corners[(0, 1, 0)], hub, corners[(1, 1, 1)]]),
            np.array([hub, corners[(1, 0, 0)]])]


def quad(a: tuple[float, float, float], b: tuple[float, float, float], width: float) -> np.ndarray:
    """A thin closed 2-D strip of ``width`` along the projected segment a -> b (legs, posts, rails).

    Like every strip here it runs forward along one side and back along the other, so its spine is
    :func:`strip_spine`."""
    p, q = project([a, b])
    d = (q - p) / max(np.linalg.norm(q - p), 1e-9)
    n = np.array([-d[1], d[0]]) * width / 2
    return close(np.array([p - n, q - n, q + n, p + n]))


def strip_spine(path: np.ndarray) -> np.ndarray:
    """The centre line of a closed strip built as ``[spine - n, reversed(spine + n), first point]``."""
    m = (len(path) - 1) // 2
    return (path[:m] + path[m: 2 * m][::-1]) / 2


def strip(spine: np.ndarray, width: float) -> np.ndarray:
    """A closed strip of ``width`` around a polyline (its spine is recovered by :func:`strip_spine`)."""
    d = np.gradient(np.asarray(spine, dtype=np.float64), axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    n = np.stack([-d[:, 1], d[:, 0]], 1) * width / 2
    return close(np.vstack([spine - n, (spine + n)[::-1]]))
