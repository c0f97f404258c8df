"""Chairs in a 3/4 view, the synthetic stand-in for QMUL-Chair-V1/V2 (Yu et al., CVPR 2016; Song et al., ICCV 2017).

Instances differ in nameable parts: the back (solid, rounded, slats, ladder, wingback, open frame), the arms, the
legs (straight, splayed, pedestal, sled, cabriole), the seat (board or cushion) and the stretchers, plus continuous
proportions. Built y-up (floor at 0) from boxes and strips in an oblique projection.
"""
from __future__ import annotations

import numpy as np

from sbir_core.data.synthetic.geometry import Part, box, close, ellipse, project, quad, smooth, strip

ATTRIBUTES = {
    "back": ["solid", "rounded", "slats", "ladder", "wingback", "frame"],
    "arms": ["none", "straight", "curved", "panel"],
    "legs": ["straight", "splayed", "pedestal", "sled", "cabriole"],
    "seat": ["board", "cushion"],
    "stretcher": ["none", "bars"],
}


def build(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    w, d = u(0.8, 1.05), u(0.6, 0.8)  # seat width and depth
    h = u(0.8, 1.0)  # seat height
    t = u(0.05, 0.07) if attrs["seat"] == "board" else u(0.13, 0.18)
    back_h = u(0.75, 1.05) if attrs["back"] != "wingback" else u(0.95, 1.2)
    back_t, leg_w = u(0.05, 0.08), u(0.05, 0.08)
    n_bars = int(rng.integers(2, 5))
    top = h + t
    parts = []

    # The back stands on the rear edge of the seat (z = d); the painter draws it first (it is behind).
    y_top = top + back_h
    if attrs["back"] in ("solid", "wingback", "rounded"):
        if attrs["back"] == "rounded":
            arch = [project([(x, top + back_h * (0.8 + 0.2 * np.sin(np.pi * x / w)), d)])[0] for x in
                    np.linspace(0, w, 9)]
            outline = close(np.vstack([project([(0, top, d)]), arch, project([(w, top, d)])]))
            paths = [outline]
        elif attrs["back"] == "wingback":
            flare = u(0.08, 0.15)
            pts = [(0, top, d), (-flare, top + back_h * 0.55, d), (-flare * 0.6, y_top, d), (w + flare * 0.6, y_top, d),
                   (w + flare, top + back_h * 0.55, d), (w, top, d)]
            paths = [close(smooth(project(pts), n=6))]
        else:
            paths = box(0, w, top, y_top, d, d + back_t)
        parts.append(Part("back", 0, paths, fill="body", z=0))
    else:  # posts + rails / slats / an open frame
        frame = project([(leg_w / 2, top, d), (leg_w / 2, y_top, d), (w - leg_w / 2, y_top, d), (w - leg_w / 2, top, d)])
        parts.append(Part("back", 0, [strip(frame, leg_w * 1.3)], fill="wood", z=0, strips=True))
        if attrs["back"] == "slats":
            xs = np.linspace(0, w, n_bars + 2)[1:-1]
            bars = [quad((x, top + 0.03, d), (x, y_top - 0.12, d), 0.05) for x in xs]
            parts.append(Part("slats", 2, bars, fill="wood", z=0, strips=True))
        elif attrs["back"] == "ladder":
            ys = np.linspace(top, y_top - 0.06, n_bars + 1)[1:-1]
            bars = [quad((0.02, y, d), (w - 0.02, y, d), 0.06) for y in ys]
            parts.append(Part("rails", 2, bars, fill="wood", z=0, strips=True))
        else:  # frame: a panel with a window in it
            inner = [project([(0.18 * w, top + 0.2 * back_h, d), (0.82 * w, top + 0.2 * back_h, d),
                              (0.82 * w, y_top - 0.2 * back_h, d), (0.18 * w, y_top - 0.2 * back_h, d)])]
            parts[-1] = Part("back", 0, [close(project([(0, top, d), (w, top, d), (w, y_top, d), (0, y_top, d)]))],
                             fill="wood", z=0)
            parts.append(Part("window", 2, [close(inner[0])], fill=None, z=1, width=0.02))

    # Legs (back pair first, they are behind the seat).
    legs, feet = [], [(0.04, 0.04), (w - 0.04, 0.04), (0.04, d - 0.04), (w - 0.04, d - 0.04)]
    kind = attrs["legs"]
    if kind in ("straight", "splayed"):
        spread = 0.0 if kind == "straight" else u(0.07, 0.13)
        for x, z in feet[::-1]:
            dx = -spread if x < w / 2 else spread
            dz = -spread if z < d / 2 else spread
            legs.append(quad((x, h, z), (x + dx, 0, z + dz), leg_w))
    elif kind == "cabriole":
        for x, z in feet[::-1]:
            s = -1 if x < w / 2 else 1
            curve = project([(x, h, z), (x + s * 0.05, h * 0.65, z), (x - s * 0.04, h * 0.25, z), (x + s * 0.04, 0, z)])
            spine = smooth(curve, n=5)
            legs.append(close(np.vstack([spine - [leg_w / 2, 0], (spine + [leg_w / 2, 0])[::-1]])))
    elif kind == "pedestal":
        c = (w / 2, d / 2)
        legs.append(quad((c[0], h, c[1]), (c[0], 0.12, c[1]), 0.09))
        for a in np.linspace(0, 2 * np.pi, 5)[:-1] + u(0, 1):
            legs.append(quad((c[0], 0.1, c[1]), (c[0] + 0.45 * np.cos(a), 0.03, c[1] + 0.4 * np.sin(a)), 0.05))
    else:  # sled: a runner on each side
        for x in (0.04, w - 0.04):
            run = project([(x, h, 0.08), (x, 0.03, 0.0), (x, 0.0, d * 0.5), (x, 0.03, d), (x, h, d - 0.08)])
            spine = smooth(run, n=5)
            legs.append(close(np.vstack([spine - [0.02, 0], (spine + [0.02, 0])[::-1]])))
    parts.append(Part("legs", 1, legs, fill="metal" if kind in ("pedestal", "sled") else "wood", z=1, strips=True))

    seat = box(0, w, h, top, 0, d)[: 2 if attrs["seat"] == "board" else 3]
    parts.append(Part("seat", 1, seat, fill="body", z=2))
    if attrs["seat"] == "cushion":
        seam = project([(0.02, h + t * 0.5, 0), (w - 0.02, h + t * 0.5, 0)])
        parts.append(Part("seam", 2, [seam], fill=None, z=3, width=0.01))

    if attrs["arms"] != "none":
        arm_y = top + u(0.22, 0.3)
        arms = []
        for x in (0.0, w - 0.07):
            if attrs["arms"] == "straight":
                arms.append(strip(project([(x + 0.035, top, 0.06), (x + 0.035, arm_y, 0.04), (x + 0.035, arm_y, d)]),
                                   0.06))
            elif attrs["arms"] == "curved":
                spine = smooth(project([(x, top, 0.05), (x, arm_y + 0.04, 0.1), (x, arm_y + 0.06, d * 0.6),
                                        (x, arm_y, d)]), n=6)
                arms.append(close(np.vstack([spine, (spine + [0.0, 0.05])[::-1]])))
            else:
                arms.append(box(x, x + 0.07, top, arm_y + 0.05, 0.0, d)[0])
        parts.append(Part("arms", 1, arms, fill="body", z=4, strips=attrs["arms"] != "panel"))

    if attrs["stretcher"] == "bars" and kind in ("straight", "splayed", "cabriole"):
        y = h * u(0.25, 0.4)
        bars = [quad((0.04, y, 0.04), (w - 0.04, y, 0.04), 0.035)]
        parts.append(Part("stretcher", 2, bars, fill="wood", z=1, strips=True))
    elif attrs["stretcher"] == "bars" and kind == "pedestal":
        parts.append(Part("stretcher", 2, [ellipse(*project([(w / 2, 0.35, d / 2)])[0], 0.22, 0.06)], fill=None,
                          z=1, width=0.015))
    return parts
