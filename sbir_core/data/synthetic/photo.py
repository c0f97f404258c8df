"""Product-style photos of a :class:`Shape`: colour, shading, texture and pose jitter (the domain gap to sketches).

Each part is painted as an anti-aliased region (2x supersampled coverage) in the colour of its role, lit by a
linear gradient, modulated by one of a few textures (smooth, grain, blotches, stripes), on a near-white background
with a soft ground shadow. The pose (scale, rotation, aspect, offset) is jittered, so photos are not pixel-aligned
with the centred, normalised sketches.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sbir_core.data.synthetic.geometry import Shape, is_closed, rotation

TEXTURES = ("smooth", "grain", "blotch", "stripes")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), dtype=np.float32)


def palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Colours (RGB in [0, 1]) for the roles the category models use."""
    hue = rng.uniform()
    body = _hsv(hue, rng.uniform(0.15, 0.85), rng.uniform(0.3, 0.9))
    neutral = [_hsv(0, 0, rng.uniform(0.85, 0.97)), _hsv(0, 0, rng.uniform(0.08, 0.2)),
               _hsv(0.08, 0.45, rng.uniform(0.45, 0.7)), body * 0.6]
    accent = _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.95))
    lum = float(body @ np.array([0.3, 0.59, 0.11]))
    return {"body": body, "sole": neutral[int(rng.integers(4))], "accent": accent,
            "metal": _hsv(0.6, 0.05, rng.uniform(0.6, 0.8)), "dark": _hsv(hue, 0.3, 0.15),
            "light": _hsv(hue, 0.1, 0.92), "wood": _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.7)),
            "glass": _hsv(0.55, 0.15, 0.85), "line": _hsv(hue, 0.4, 0.12 if lum > 0.45 else 0.9)}


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A multiplicative texture field around 1 (``(size, size)`` float32)."""
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    if kind == "smooth":
        return np.ones((size, size), np.float32)
    if kind == "grain":
        return (1 + rng.uniform(0.03, 0.08) * rng.standard_normal((size, size))).astype(np.float32)
    if kind == "blotch":
        coarse = Image.fromarray(rng.standard_normal((12, 12)).astype(np.float32))
        field = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32)
        return 1 + rng.uniform(0.06, 0.15) * field
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 14)
    wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    return (1 + rng.uniform(0.06, 0.14) * wave).astype(np.float32)


def pose(shape: Shape, rng: np.random.Generator, size: int, margin: float = 4.0) -> Shape:
    """Place the shape in the photo: longer side 62-85 % of the frame, rotated +-8 deg, aspect +-8 %, and shifted
    at random as far as the frame allows (keeping ``margin`` px free)."""
    pts = shape.points()
    lo, hi = pts.min(0), pts.max(0)
    scale = rng.uniform(0.62, 0.85) * size / float((hi - lo).max())
    aspect = np.diag([rng.uniform(0.92, 1.08), 1.0])
    matrix = scale * rotation(np.deg2rad(rng.uniform(-8, 8))) @ aspect
    moved = (pts - (lo + hi) / 2) @ matrix.T
    room = np.maximum(size / 2 - margin - np.maximum(-moved.min(0), moved.max(0)), 0.0)
    centre = size / 2 + rng.uniform(-1, 1, 2) * room
    return shape.transformed(matrix, centre - ((lo + hi) / 2) @ matrix.T)


def render_photo(shape: Shape, rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, Shape]:
    """Paint a photo of ``shape``; returns the ``(size, size, 3)`` uint8 image and the shape in photo pixels."""
    placed = pose(shape, rng, size)
    colours = palette(rng)
    tex = texture(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
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

    big = 2 * size
    for part in sorted(placed.parts, key=lambda p: p.z):
        mask = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(mask)
        role = part.fill or "line"
        for path in part.paths:
            xy = [tuple(p) for p in (2 * path).tolist()]
            if part.fill is not None and is_closed(path):
                draw.polygon(xy, fill=255)
            else:
                width = max(int(round(2 * part.width * float((pts.max(0) - pts.min(0)).max()))), 2)
                draw.line(xy, fill=255, width=width, joint="curve")
        alpha = np.asarray(mask.reduce(2), np.float32)[..., None] / 255
        colour = colours[role] * rng.uniform(0.85, 1.1)
        paint = colour[None, None, :] * (shading * tex)[..., None]
        image = image * (1 - alpha) + paint * alpha
    image += rng.normal(0, 0.012, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), placed
