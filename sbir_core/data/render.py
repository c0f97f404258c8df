"""Rasterising vector sketches, whole and progressively (step by step as they are drawn).

Convention (official Bhunia/Sain code, ``rasterize.py`` / ``render_sketch_chairv2.py``; see Bhunia et al., CVPR 2020):
coordinates are rounded on the 256 frame, consecutive points of a stroke are joined by 1-px Bresenham lines, pixels
in row or column 0 (and outside the frame) are dropped, and one ``binary_dilation`` with the 3 x 3 cross makes the
lines about 3 px wide.

Polarity: INK = 1, background = 0 (float32 in [0, 1]). The official code also draws white strokes on a black canvas
(255 on 0); we keep that polarity, scaled to [0, 1], because zero background is what a CNN's zero padding and a
sum/max pooling expect, and an empty (not yet drawn) partial sketch is then an all-zero input. Show ``1 - raster``
to see black lines on white.

Two implementations:

* :func:`render_reference` / :func:`progressive_reference`: the straightforward per-sketch, per-step loop with
  pure-Python Bresenham and ``scipy.ndimage.binary_dilation``: the ground truth for tests and benchmarks.
* :func:`render_sketches` / :func:`progressive_rasters`: batched and vectorised in PyTorch (runs on CUDA when given
  a CUDA device). Every pixel of every Bresenham line is enumerated at once with the closed form of Bresenham's
  decision variable; each pixel gets the index of the first step that draws it; a min-filter over the cross gives,
  for every pixel of every sketch, the first step at which the DILATED raster is inked; all T steps then come from
  one comparison. Both implementations give identical rasters (tested).

Progressive schedules (the first step is index 0, the last one is always the whole sketch):

* ``"points"``, T equal steps: step k (k = 1..T) holds the first ``ceil(k N / T)`` of the N points.
* ``"strokes"``, T equal steps: step k holds the first ``ceil(k S / T)`` of the S strokes.
* ``"official17"``: the released on-the-fly code: snapshots after drawing point i for every i in
  ``round(linspace(0, N, 18)[1:])`` with i < N (16 of them for N >= 18), then the full sketch: 17 rasters.
  (The paper describes 20 steps of 5 %.) For N < 18 duplicate thresholds are kept, so there are always 17 rasters.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from sbir_core.data.sketch import CANVAS, Sketch

SCHEDULES = ("points", "strokes", "official17")


# --- reference implementation (official style, one sketch and one step at a time) -----------------------------------
def bresenham(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Integer points of the line from (x0, y0) to (x1, y1), both ends included (the ``bresenham`` package's order)."""
    dx, dy = x1 - x0, y1 - y0
    xsign, ysign = (1 if dx > 0 else -1), (1 if dy > 0 else -1)
    dx, dy = abs(dx), abs(dy)
    if dx > dy:
        xx, xy, yx, yy = xsign, 0, 0, ysign
    else:
        dx, dy = dy, dx
        xx, xy, yx, yy = 0, ysign, xsign, 0
    decision, y, out = 2 * dy - dx, 0, []
    for x in range(dx + 1):
        out.append((x0 + x * xx + y * yx, y0 + x * xy + y * yy))
        if decision >= 0:
            y += 1
            decision -= 2 * dx
        decision += 2 * dy
    return out


def _integer_points(points: np.ndarray) -> np.ndarray:
    """The official preprocessing: ``np.round`` (half to even) on the 256 frame, then ``int``."""
    return np.round(points[:, :2]).astype(np.int64)


def render_reference(sketch: Sketch | np.ndarray, n_points: int | None = None, canvas: int = CANVAS) -> np.ndarray:
    """Rasterise the first ``n_points`` points (all by default) the official way: ``(canvas, canvas)`` bool, ink True."""
    points = sketch.points if isinstance(sketch, Sketch) else np.asarray(sketch)
    xy, pen = _integer_points(points), points[:, 2]
    image = np.zeros((canvas, canvas), dtype=bool)
    n = len(points) if n_points is None else n_points
    for i in range(n):
        start = xy[i] if i == 0 or pen[i - 1] == 1 else xy[i - 1]
        for x, y in bresenham(int(start[0]), int(start[1]), int(xy[i, 0]), int(xy[i, 1])):
            if 0 < x < canvas and 0 < y < canvas:
                image[y, x] = True
    return ndimage.binary_dilation(image)


def _prefix_points(sketch: Sketch, steps: int, schedule: str) -> list[int]:
    """How many points each progressive step holds (strokes are whole strokes, i.e. prefixes of points)."""
    n = sketch.n_points
    if schedule == "points":
        return [-(-k * n // steps) for k in range(1, steps + 1)]
    if schedule == "strokes":
        ends = np.flatnonzero(sketch.points[:, 2]) + 1
        s = len(ends)
        return [int(ends[-(-k * s // steps) - 1]) for k in range(1, steps + 1)]
    if schedule == "official17":
        thresholds = np.round(np.linspace(0, n, 18)[1:17]).astype(int)
        return [min(int(t), n - 1) + 1 for t in thresholds] + [n]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def progressive_reference(sketch: Sketch, steps: int = 20, schedule: str = "points", canvas: int = CANVAS) -> np.ndarray:
    """Official-style progressive rendering: redraw and dilate for every step. ``(T, canvas, canvas)`` bool."""
    if schedule == "official17":
        steps = 17
    return np.stack([render_reference(sketch, n, canvas) for n in _prefix_points(sketch, steps, schedule)])


# --- fast batched implementation -------------------------------------------------------------------------------------
def _segments(sketches: Sequence[Sketch], steps: int, schedule: str) -> tuple[np.ndarray, ...]:
    """All segments of all sketches, vectorised: start x/y, end x/y, the step that first shows it, its sketch."""
    points = np.concatenate([s.points for s in sketches])
    lengths = np.array([s.n_points for s in sketches])
    which = np.repeat(np.arange(len(sketches)), lengths)
    first = np.cumsum(lengths) - lengths  # index of each sketch's first point
    index = np.arange(len(points)) - first[which]  # point index within its sketch
    n = lengths[which]
    xy = _integer_points(points)
    pen = points[:, 2]
    starts_stroke = np.ones(len(points), bool)
    starts_stroke[1:] = pen[:-1] == 1
    starts_stroke[first] = True
    start = np.where(starts_stroke[:, None], xy, np.roll(xy, 1, axis=0))
    if schedule == "points":  # point i is in step k (0-based) iff i < ceil((k+1) n / T)  <=>  k >= floor(i T / n)
        step = index * steps // n
    elif schedule == "strokes":
        stroke = np.cumsum(starts_stroke) - 1
        stroke -= stroke[first][which]
        n_strokes = np.add.reduceat(starts_stroke.astype(np.int64), first)[which]
        step = stroke * steps // n_strokes
    else:  # official17: the number of thresholds strictly below i (the last raster is the full sketch)
        thresholds = np.minimum(np.round(np.arange(1, 17)[None, :] * n[:, None] / 17.0), n[:, None] - 1)
        step = (thresholds < index[:, None]).sum(1)
    return start[:, 0], start[:, 1], xy[:, 0], xy[:, 1], step, which


def _line_pixels(sketches: Sequence[Sketch], steps: int, schedule: str, canvas: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pixel of every Bresenham line of every sketch inside the frame: its flat index into a
    ``(B, canvas, canvas)`` stack, and the step that first draws it."""
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)  # noqa: E731
    x0, y0, x1, y1, step, which = map(to, _segments(sketches, steps, schedule))

    # Bresenham's minor-axis offset after j major steps is floor((2 j d_minor + d_major) / (2 d_major)), i.e.
    # j * d_minor / d_major rounded half up (exactly what the decision variable tracks).
    dx, dy = x1 - x0, y1 - y0
    adx, ady = dx.abs(), dy.abs()
    x_major = adx > ady
    major, minor = torch.where(x_major, adx, ady), torch.where(x_major, ady, adx)
    lengths = major + 1
    seg = torch.repeat_interleave(torch.arange(len(x0), device=device), lengths)
    j = torch.arange(len(seg), device=device) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    maj, mnr = major[seg], minor[seg]
    off = torch.div(2 * j * mnr + maj, 2 * maj.clamp(min=1), rounding_mode="floor")
    xm = x_major[seg]
    px = x0[seg] + torch.where(dx[seg] > 0, 1, -1) * torch.where(xm, j, off)
    py = y0[seg] + torch.where(dy[seg] > 0, 1, -1) * torch.where(xm, off, j)
    keep = (px > 0) & (py > 0) & (px < canvas) & (py < canvas)
    return ((which[seg] * canvas + py) * canvas + px)[keep], step[seg][keep]


def _first_step_maps(sketches: Sequence[Sketch], steps: int, schedule: str, canvas: int,
                     device: torch.device) -> torch.Tensor:
    """``(B, canvas, canvas)`` int16: the first step index at which each pixel of each DILATED raster is inked (or T)."""
    flat, step = _line_pixels(sketches, steps, schedule, canvas, device)
    first = torch.full((len(sketches) * canvas * canvas,), steps, dtype=torch.int32, device=device)
    first.scatter_reduce_(0, flat, step.to(torch.int32), reduce="amin")
    # Dilation with the 3 x 3 cross = a min-filter over the cross on the first-step map.
    return _cross_filter(first.view(len(sketches), canvas, canvas).to(torch.int16), torch.minimum)


def _ink_maps(sketches: Sequence[Sketch], canvas: int, device: torch.device) -> torch.Tensor:
    """``(B, canvas, canvas)`` bool: the whole sketches, dilated with the 3 x 3 cross (``_first_step_maps`` with one
    step, in a byte per pixel instead of four)."""
    flat, _ = _line_pixels(sketches, 1, "points", canvas, device)
    ink = torch.zeros(len(sketches) * canvas * canvas, dtype=torch.bool, device=device)
    ink[flat] = True
    return _cross_filter(ink.view(len(sketches), canvas, canvas), torch.logical_or)


def _cross_filter(maps: torch.Tensor, combine: Callable[..., torch.Tensor]) -> torch.Tensor:
    """``combine`` (``torch.minimum``, ``torch.logical_or``) of each pixel of ``(B, H, W)`` maps with its four
    neighbours: the 3 x 3 cross of ``binary_dilation``."""
    out = maps.clone()
    combine(out[:, 1:], maps[:, :-1], out=out[:, 1:])
    combine(out[:, :-1], maps[:, 1:], out=out[:, :-1])
    combine(out[:, :, 1:], maps[:, :, :-1], out=out[:, :, 1:])
    combine(out[:, :, :-1], maps[:, :, 1:], out=out[:, :, :-1])
    return out


def _ink_coverage(ink: torch.Tensor, size: int, canvas: int) -> torch.Tensor:
    """``(B, size, size)`` float32: the ink share of each output pixel, bit for bit what ``F.interpolate(mode="area")``
    gives (``_resize``) on the float rasters. Area pooling sums the 0/1 pixels of a window (an exact count in any
    order) and divides by the window's height, then its width; the counts here come from block sums (integer factors)
    or two 0/1 matrix products (the overlapping windows of other factors)."""
    b = ink.shape[0]
    if size > canvas:
        return _resize(ink.float(), size, canvas)
    if canvas % size == 0:
        f = canvas // size  # block sums, rows then columns, in int16 (a count is at most f * f <= 2**14)
        rows = ink.view(torch.uint8).view(b, size, f, canvas).sum(2, dtype=torch.int16)
        return rows.view(b, size, size, f).sum(3, dtype=torch.int16).float().div_(f * f)
    i = torch.arange(size, device=ink.device)
    start, end = i * canvas // size, ((i + 1) * canvas + size - 1) // size  # adaptive pooling's windows
    pixel = torch.arange(canvas, device=ink.device)
    window = ((pixel >= start[:, None]) & (pixel < end[:, None])).float()  # (size, canvas)
    extent = (end - start).float()
    counts = window @ ink.float() @ window.T
    return counts.div_(extent[:, None]).div_(extent[None, :])


def _coverage(first: torch.Tensor, steps: int, size: int, canvas: int) -> torch.Tensor:
    """Area-downsampled rasters of every step, ``(B, T, size, size)`` float32, straight from the first-step maps.

    For an integer factor f = canvas / size, the ink share of a block at step s is the share of its f x f pixels
    whose first step is <= s: a per-block histogram of first steps, accumulated over s. (Other sizes: rasterise at
    ``canvas`` and area-resize.)
    """
    b = first.shape[0]
    if canvas % size:
        levels = torch.arange(steps, device=first.device).view(1, steps, 1, 1)
        return _resize((first.unsqueeze(1) <= levels).float(), size, canvas)
    f = canvas // size
    blocks = first.view(b, size, f, size, f).permute(0, 1, 3, 2, 4).reshape(b, size * size, f * f).long()
    counts = torch.zeros(b, size * size, steps + 1, device=first.device)
    counts.scatter_add_(2, blocks, torch.ones_like(blocks, dtype=counts.dtype))
    share = counts[:, :, :steps].cumsum(2).div_(f * f)
    return share.permute(0, 2, 1).reshape(b, steps, size, size)


def _resize(rasters: torch.Tensor, size: int, canvas: int) -> torch.Tensor:
    """Area-average ``(..., canvas, canvas)`` rasters down (or bilinearly up) to ``size``."""
    if size == canvas:
        return rasters
    shape = rasters.shape
    flat = rasters.reshape(-1, 1, canvas, canvas)
    mode = "area" if size < canvas else "bilinear"
    out = F.interpolate(flat, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return out.reshape(*shape[:-2], size, size)


def progressive_rasters(sketches: Sequence[Sketch], steps: int = 20, size: int = CANVAS, schedule: str = "points",
                        device: torch.device | str | None = None, chunk: int = 64,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All progressive steps of many sketches at once: ``(B, T, size, size)`` in [0, 1], ink = 1.

    ``schedule`` is ``"points"`` (default, T = ``steps`` equal shares of points, as the CVPR 2020 paper's 5 %
    steps), ``"strokes"`` or ``"official17"`` (T = 17, the released code). Rendering is on the 256 frame;
    ``size`` != 256 area-averages the rasters (as the official code renders at 256 and then resizes).
    ``dtype=torch.bool`` (only with ``size`` = 256) returns the binary rasters.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    steps = 17 if schedule == "official17" else steps
    device = torch.device(device) if device is not None else torch.device("cpu")
    out = torch.empty((len(sketches), steps, size, size), dtype=dtype, device=device)
    levels = torch.arange(steps, dtype=torch.int16, device=device).view(1, steps, 1, 1)
    if dtype == torch.bool and size != CANVAS:
        raise ValueError("binary rasters are only available at the 256 frame")
    for lo in range(0, len(sketches), chunk):
        first = _first_step_maps(sketches[lo: lo + chunk], steps, schedule, CANVAS, device)
        if size == CANVAS and device.type == "cpu":  # numpy's broadcast compare is much faster than torch's here
            np.less_equal(first.numpy()[:, None], levels.numpy(), out=out[lo: lo + chunk].numpy(), casting="unsafe")
        elif size == CANVAS:
            out[lo: lo + chunk] = first.unsqueeze(1) <= levels
        else:
            out[lo: lo + chunk] = _coverage(first, steps, size, CANVAS)
    return out


def render_sketches(sketches: Sequence[Sketch], size: int = CANVAS, device: torch.device | str | None = None,
                    chunk: int = 64) -> torch.Tensor:
    """Whole sketches, batched: ``(B, size, size)`` float32 in [0, 1], ink = 1."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    out = torch.empty((len(sketches), size, size), dtype=torch.float32, device=device)
    for lo in range(0, len(sketches), chunk):
        out[lo: lo + chunk] = _ink_coverage(_ink_maps(sketches[lo: lo + chunk], CANVAS, device), size, CANVAS)
    return out


class StrokeCanvas:
    """A sketch rendered stroke by stroke, as it is drawn: the same rasters as :func:`render_sketches`.

    Dilation distributes over union, so each new stroke is drawn and dilated on its own and or-ed into the ink;
    nothing already drawn is rendered again (the official code redraws the whole sketch at every step).
    """

    def __init__(self, canvas: int = CANVAS) -> None:
        self.canvas = canvas
        self.ink = torch.zeros((canvas, canvas), dtype=torch.bool)

    def add_stroke(self, points: np.ndarray) -> None:
        """Add one stroke, ``(n, 2)`` absolute x, y on the frame."""
        stroke = np.column_stack([np.asarray(points, dtype=np.float64).reshape(-1, 2), np.zeros(len(points))])
        self.ink |= _ink_maps([Sketch.from_array(stroke)], self.canvas, torch.device("cpu"))[0]

    def raster(self, size: int) -> torch.Tensor:
        """``(size, size)`` float32 in [0, 1], ink = 1: :func:`render_sketches` of the strokes so far."""
        return _ink_coverage(self.ink[None], size, self.canvas)[0]
