"""Product-style photos of a :class:`Shape`: colour, shading, texture and pose jitter (the domain gap to sketches).

Each part is painted as an anti-aliased region (2x supersampled coverage) in the colour of its role, lit by a
linear gradient, modulated by one of a few textures (smooth, grain, blotches, stripes), on a near-white background
with a soft ground shadow. The pose (scale, rotation, aspect, offset) is jittered, so photos are not pixel-aligned
with the centred, normalised sketches.
"""
from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sbir_core.data.synthetic.geometry import Shape, is_closed, rotation

TEXTURES = ("smooth", "grain", "blotch", "stripes")


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> np.ndarray:
    grid = np.mgrid[0:size, 0:size].astype(np.float32)
    grid.flags.writeable = False
    return grid


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), dtype=np.float32)


def palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Colours (RGB in [0, 1]) for the roles the category models use."""
    hue = rng.uniform()
    body = _hsv(hue, rng.uniform(0.25, 0.9), rng.uniform(0.25, 0.8))  # never white on the white background
    neutral = [_hsv(0, 0, rng.uniform(0.85, 0.97)), _hsv(0, 0, rng.uniform(0.08, 0.2)),
               _hsv(0.08, 0.45, rng.uniform(0.45, 0.7)), body * 0.6]
    accent = _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.95))
    lum = float(body @ np.array([0.3, 0.59, 0.11]))
    return {"body": body, "sole": neutral[int(rng.integers(4))], "accent": accent,
            "metal": _hsv(0.6, 0.05, rng.uniform(0.6, 0.8)), "dark": _hsv(hue, 0.3, 0.15),
            "light": _hsv(hue, 0.1, 0.92), "wood": _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.7)),
            "glass": _hsv(0.55, 0.15, 0.85), "line": _hsv(hue, 0.4, 0.12 if lum > 0.45 else 0.9)}


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth multiplicative texture field around 1 (``(size, size)`` float32): plain, fine or coarse blotches
    (leather, fabric), or stripes. Smooth on purpose: pixel noise would make the PNGs large and slow to write."""
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    if kind == "smooth":
        return np.ones((size, size), np.float32)
    if kind in ("grain", "blotch"):
        cells, amplitude = (48, rng.uniform(0.04, 0.08)) if kind == "grain" else (12, rng.uniform(0.06, 0.15))
        coarse = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32))
        return 1 + amplitude * np.asarray(coarse.resize((size, size), Image.BILINEAR), dtype=np.float32)
    yy, xx = _grid(size)
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 14)
    wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    return (1 + rng.uniform(0.06, 0.14) * wave).astype(np.float32)


def pose(shape: Shape, rng: np.random.Generator, size: int, margin: float = 4.0) -> Shape:
    """Place the shape in the photo: longer side 66-86 % of the frame, rotated +-5 deg, aspect +-6 %, and shifted
    at random as far as the frame allows (keeping ``margin`` px free)."""
    pts = shape.points()
    lo, hi = pts.min(0), pts.max(0)
    scale = rng.uniform(0.66, 0.86) * size / float((hi - lo).max())
    aspect = np.diag([rng.uniform(0.94, 1.06), 1.0])
    matrix = scale * rotation(np.deg2rad(rng.uniform(-5, 5))) @ aspect
    moved = (pts - (lo + hi) / 2) @ matrix.T
    room = np.maximum(size / 2 - margin - np.maximum(-moved.min(0), moved.max(0)), 0.0)
    centre = size / 2 + rng.uniform(-1, 1, 2) * room
    return shape.transformed(matrix, centre - ((lo + hi) / 2) @ matrix.T)


def render_photo(shape: Shape, rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, Shape]:
    """Paint a photo of ``shape``; returns the ``(size, size, 3)`` uint8 image and the shape in photo pixels."""
    placed = pose(shape, rng, size)
    colours = palette(rng)
    tex = texture(rng, size)
    yy, xx = _grid(size)
    light = rng.uniform(0, 2 * np.pi)
    gradient = ((xx - size / 2) * np.cos(light) + (yy - size / 2) * np.sin(light)) / size
    shading = 1 + rng.uniform(0.3, 0.6) * gradient

    tint = rng.uniform(0.93, 1.0, 3).astype(np.float32)
    image = np.ones((size, size, 3), np.float32) * tint * (1 - 0.05 * yy / size)[..., None]
    pts = placed.points()
    shadow = Image.new("L", (size, size), 0)
    floor = float(pts[:, 1].max())
    ImageDraw.Draw(shadow).ellipse([pts[:, 0].min(), floor - 6, pts[:, 0].max(), floor + 6], fill=110)
    alpha = np.asarray(shadow.filter(ImageFilter.GaussianBlur(5)), np.float32)[..., None] / 255
    image *= 1 - 0.5 * alpha

    light_field = (shading * tex)[..., None]
    edge_strength = rng.uniform(0.2, 0.5)
    extent = float((pts.max(0) - pts.min(0)).max())
    for part in sorted(placed.parts, key=lambda p: p.z):
        role = part.fill or "line"
        width = max(int(round(2 * part.width * extent)), 2)
        lo = np.floor(np.concatenate(part.paths).min(0) - width).astype(int)
        hi = np.ceil(np.concatenate(part.paths).max(0) + width + 1).astype(int)
        x0, y0 = np.clip(lo, 0, size)
        x1, y1 = np.clip(hi, 0, size)
        if x1 <= x0 or y1 <= y0:
            continue
        # Anti-aliased coverage: draw at 2x inside the part's box, then average 2x2 blocks.
        mask = Image.new("L", (2 * (x1 - x0), 2 * (y1 - y0)), 0)
        draw = ImageDraw.Draw(mask)
        for path in part.paths:
            xy = [tuple(q) for q in (2 * (path - [x0, y0])).tolist()]
            if part.fill is not None and is_closed(path):
                draw.polygon(xy, fill=255)
            else:
                draw.line(xy, fill=255, width=width, joint="curve")
        alpha = np.asarray(mask.reduce(2), np.float32)[..., None] / 255
        colour = colours[role] * rng.uniform(0.85, 1.1)
        window = image[y0:y1, x0:x1]
        window += alpha * (colour * light_field[y0:y1, x0:x1] - window)
        if part.fill is not None:  # shading at the part's edge: the contour a photo shows
            rim = Image.new("L", mask.size, 0)
            for path in part.paths:
                ImageDraw.Draw(rim).line([tuple(q) for q in (2 * (path - [x0, y0])).tolist()], fill=255, width=3)
            edge = np.asarray(rim.reduce(2), np.float32)[..., None] / 255 * alpha * edge_strength
            window *= 1 - edge
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), placed
