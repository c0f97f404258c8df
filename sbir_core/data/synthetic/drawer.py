"""Synthetic drawers: trace a :class:`Shape`'s contours into a vector sketch in a drawer-specific style.

A sketch is drawn coarse to fine, like the real ones (the premise of Bhunia et al., CVPR 2020; in QMUL-Chair-V2 the
first stroke holds about 26 % of a sketch's ink on average, the tenth about 6 %): the silhouette first, then the
major parts (larger first), then the details, each detail kept with the drawer's ``detail`` probability. Each style has its own global distortion (aspect, shear), part-placement error,
low-frequency wobble, tremor, corner cutting, contour fragmentation, overshoot and point spacing; sketches are then
normalised like ChairV2 (longer side 190 px, centred in 256), resampled, and cut after 15 strokes: ChairV2 has a
spike at exactly 15 strokes, and the 15th stroke of those sketches is as long as the 14th with no pen-up jumps in it,
so the authors' preprocessing evidently dropped the strokes after the 15th (the finest details, drawn last).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sbir_core.data.sketch import CANVAS, LONGER_SIDE, Sketch, normalise, resample
from sbir_core.data.synthetic.geometry import Shape, arc_length, densify, is_closed, rotation, strip_spine

MAX_STROKES = 15


@dataclass(frozen=True)
class DrawerStyle:
    """How one (synthetic) person draws. Lengths are in px of the 190-px normalised sketch."""

    name: str
    detail: float  # probability of drawing each level-2 (detail) part
    wobble: float  # amplitude of the low-frequency deviation from the true contour
    tremor: float  # amplitude of high-frequency jitter
    distortion: float  # size of the global aspect / shear error
    misplace: float  # size of each part's own offset / scale error
    fragment: float  # expected extra breaks per 250 px of contour (more strokes)
    overshoot: float  # how far strokes run past their ends
    simplify: float  # corner cutting: Douglas-Peucker tolerance (angular look)
    spacing: float  # point spacing after resampling
    shuffle: float  # probability of drawing two neighbouring parts in swapped order
    single_line: float  # probability of drawing a thin part (leg, rail, strap) as one line instead of its outline
    connect: float  # probability of not lifting the pen when the next stroke starts near the last one's end
    bias: tuple[float, float]  # the drawer's habitual aspect error (x, y scale - 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _style(name: str, detail: float, wobble: float, tremor: float, distortion: float, misplace: float, fragment: float,
           overshoot: float, simplify: float, spacing: float, shuffle: float, single_line: float, connect: float,
           bias: tuple[float, float]) -> DrawerStyle:
    return DrawerStyle(name, detail, wobble, tremor, distortion, misplace, fragment, overshoot, simplify, spacing,
                       shuffle, single_line, connect, bias)


# name        detail wobble tremor distort misplace fragment overshoot simplify spacing shuffle single connect bias
DRAWERS: tuple[DrawerStyle, ...] = (
    _style("careful", 0.95, 1.5, 0.3, 0.03, 0.02, 0.5, 1.0, 0.0, 12.6, 0.05, 0.4, 0.3, (0.0, 0.0)),
    _style("quick", 0.45, 4.0, 0.6, 0.08, 0.05, 0.5, 5.0, 2.0, 14.2, 0.2, 0.9, 0.6, (0.05, -0.03)),
    _style("shaky", 0.8, 2.5, 2.0, 0.05, 0.04, 0.8, 2.0, 0.0, 12.1, 0.1, 0.5, 0.2, (-0.04, 0.02)),
    _style("minimal", 0.25, 2.5, 0.4, 0.06, 0.04, 0.3, 2.0, 3.0, 14.7, 0.1, 1.0, 0.7, (0.0, 0.06)),
    _style("detailed", 1.0, 2.0, 0.5, 0.04, 0.03, 0.7, 1.5, 0.0, 11.6, 0.05, 0.3, 0.1, (0.03, 0.0)),
    _style("loose", 0.65, 6.0, 0.8, 0.10, 0.08, 0.9, 7.0, 0.5, 13.7, 0.3, 0.7, 0.5, (-0.06, -0.05)),
    _style("boxy", 0.7, 1.5, 0.3, 0.06, 0.04, 1.0, 1.0, 6.0, 13.1, 0.1, 0.6, 0.2, (0.08, 0.04)),
    _style("sketchy", 0.85, 3.5, 1.2, 0.07, 0.06, 1.3, 4.0, 1.0, 12.6, 0.25, 0.3, 0.0, (0.0, -0.07)),
    _style("wide", 0.6, 3.0, 0.5, 0.05, 0.05, 0.8, 2.5, 1.5, 13.1, 0.15, 0.6, 0.4, (0.12, -0.04)),
    _style("tall", 0.6, 3.0, 0.5, 0.05, 0.05, 0.8, 2.5, 1.5, 13.1, 0.15, 0.6, 0.4, (-0.1, 0.1)),
)


def _simplify(path: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker polyline simplification."""
    if tolerance <= 0 or len(path) < 3:
        return path
    a, b = path[0], path[-1]
    d = b - a
    norm = np.hypot(*d)
    rel = path - a
    dist = np.abs(d[0] * rel[:, 1] - d[1] * rel[:, 0]) / norm if norm > 1e-9 else np.hypot(rel[:, 0], rel[:, 1])
    i = int(np.argmax(dist))
    if dist[i] <= tolerance:
        return np.vstack([a, b])
    return np.vstack([_simplify(path[: i + 1], tolerance)[:-1], _simplify(path[i:], tolerance)])


def _wiggle(path: np.ndarray, amplitude: float, tremor: float, rng: np.random.Generator) -> np.ndarray:
    """Displace a dense polyline along its normals by a smooth random curve plus a little tremor."""
    if len(path) < 3:
        return path
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    offset = np.zeros(len(path))
    for _ in range(3):
        wavelength = rng.uniform(40, 180)
        offset += rng.normal(0, amplitude / 1.7) * np.sin(2 * np.pi * s / wavelength + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0, tremor, len(path))
    offset += np.convolve(jitter, np.ones(3) / 3, mode="same")
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    return path + offset[:, None] * normal


def _extend(path: np.ndarray, length: float) -> np.ndarray:
    """Run ``length`` px past both ends along the end tangents."""
    if len(path) < 2 or length <= 0:
        return path
    head = path[0] - path[1]
    tail = path[-1] - path[-2]
    head /= max(np.hypot(*head), 1e-9)
    tail /= max(np.hypot(*tail), 1e-9)
    return np.vstack([path[0] + head * length, path, path[-1] + tail * length])


def _corner_indices(path: np.ndarray) -> np.ndarray:
    """Indices of the sharpest turns of a dense polyline (candidate break points)."""
    d = np.diff(path, axis=0)
    angle = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs(np.angle(np.exp(1j * np.diff(angle))))
    return np.argsort(-turn)[: max(len(turn) // 6, 1)] + 1


def _strokes_of_path(path: np.ndarray, style: DrawerStyle, rng: np.random.Generator,
                     silhouette: bool = False) -> list[np.ndarray]:
    """Turn one contour into one or more drawn strokes (a silhouette is broken half as often)."""
    closed = is_closed(path)
    dense = densify(path, 3.0)
    if closed:  # start somewhere on the loop; leave a gap or an overlap where the pen comes back
        start = int(rng.integers(len(dense) - 1))
        dense = np.vstack([dense[start:-1], dense[:start + 1]])
        over = int(rng.normal(0, style.overshoot + 1) / 2)  # points drawn past the start (> 0) or left out (< 0)
        over = max(over, 2 - len(dense))  # a gap never eats a whole small loop (a clock's hand): 2 points remain
        if over > 0:
            dense = np.vstack([dense, dense[1: 1 + over]])
        elif over < 0:
            dense = dense[:over]
    elif rng.uniform() < 0.5:
        dense = dense[::-1]
    length = arc_length(dense)
    rate = style.fragment * length / 250.0 * (0.5 if silhouette else 1.0)
    breaks = rng.poisson(rate) if length > 150 else 0  # long contours only
    pieces = [dense]
    if breaks and len(dense) > 12:
        corners = _corner_indices(dense)
        cut = np.sort(rng.choice(corners, size=min(breaks, len(corners)), replace=False))
        pieces = [p for p in np.split(dense, cut) if len(p) >= 2]
        pieces = [np.vstack([p, q[:1]]) for p, q in zip(pieces[:-1], pieces[1:])] + pieces[-1:]
    strokes = []
    for piece in pieces:
        piece = _simplify(piece, style.simplify * rng.uniform(0.5, 1.5))
        piece = densify(piece, 3.0)
        piece = _wiggle(piece, style.wobble, style.tremor, rng)
        if not closed or len(pieces) > 1:
            piece = _extend(piece, abs(rng.normal(0, style.overshoot)))
        strokes.append(piece)
    return strokes


def draw_sketch(shape: Shape, style: DrawerStyle, rng: np.random.Generator) -> tuple[Sketch, dict[str, list[float]]]:
    """Draw ``shape`` in ``style``; returns the sketch (256 frame, longer side 190) and each drawn part's box."""
    parts = [p for p in shape.parts if p.in_sketch and (p.level < 2 or rng.uniform() < style.detail)]
    extent = lambda p: float(np.ptp(np.concatenate(p.paths), axis=0).max())  # noqa: E731
    parts.sort(key=lambda p: (p.level, -extent(p)))
    for i in range(1, len(parts) - 1):  # occasional out-of-order parts (never before the silhouette)
        if rng.uniform() < style.shuffle:
            parts[i], parts[i + 1] = parts[i + 1], parts[i]

    # Work in the normalised 256 frame so that the style's px are px; the drawer's global distortion first.
    all_pts = shape.points()
    scale = LONGER_SIDE / float(np.ptp(all_pts, axis=0).max())
    centre = (all_pts.min(0) + all_pts.max(0)) / 2
    warp = np.diag(1 + np.array(style.bias) + rng.normal(0, style.distortion, 2))
    warp = warp @ np.array([[1, rng.normal(0, style.distortion)], [0, 1]]) @ rotation(rng.normal(0, 2 * style.distortion))
    strokes, owners = [], []
    for part in parts:
        pts = np.concatenate(part.paths)
        part_centre = (pts.min(0) + pts.max(0)) / 2
        shift = rng.normal(0, style.misplace * LONGER_SIDE * 0.3, 2)
        grow = 1 + rng.normal(0, style.misplace)
        as_lines = part.strips and rng.uniform() < style.single_line
        for j, path in enumerate(part.paths):
            if j >= 2 and part.level > 0 and rng.uniform() > 0.5 + 0.5 * style.detail:
                continue  # one of many similar paths (a third leg, a fourth slat) left out
            path = strip_spine(path) if as_lines else path
            local = ((path - part_centre) * grow + part_centre - centre) * scale
            for stroke in _strokes_of_path(local @ warp.T + shift + CANVAS / 2, style, rng, part.level == 0):
                reach = 0.1 if strokes and owners[-1] == part.name else 0.06  # same part / the next part
                if strokes and rng.uniform() < style.connect and \
                        np.linalg.norm(stroke[0] - strokes[-1][-1]) < reach * LONGER_SIDE:
                    strokes[-1] = np.vstack([strokes[-1], stroke])  # the pen stays down
                    continue
                strokes.append(stroke)
                owners.append(part.name)

    # Normalise like ChairV2, resample at the drawer's spacing, cap the stroke count.
    flat = normalise(np.concatenate(strokes))
    sizes = np.cumsum([len(s) for s in strokes])[:-1]
    spacing = style.spacing * rng.uniform(0.95, 1.05)
    strokes = [resample(s, spacing) for s in np.split(flat, sizes)]
    keep = [i for i, s in enumerate(strokes) if len(s) >= 2]
    strokes, owners = [strokes[i] for i in keep], [owners[i] for i in keep]
    strokes, owners = strokes[:MAX_STROKES], owners[:MAX_STROKES]
    # Resampling moves the extremes inward a little: normalise again so the longer side is exactly 190 px.
    sketch = Sketch.from_strokes(strokes)
    sketch = Sketch(normalise(sketch.points))
    strokes = sketch.strokes()
    boxes: dict[str, list[float]] = {}
    for stroke, owner in zip(strokes, owners):
        lo, hi = stroke.min(0), stroke.max(0)
        old = boxes.get(owner)
        box = [lo[0], lo[1], hi[0], hi[1]] if old is None else [min(old[0], lo[0]), min(old[1], lo[1]),
                                                                   max(old[2], hi[0]), max(old[3], hi[1])]
        boxes[owner] = box
    return sketch, {k: [round(float(v), 2) for v in box] for k, box in boxes.items()}
