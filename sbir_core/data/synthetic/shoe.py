"""Shoes in side view (toe left), the synthetic stand-in for QMUL-Shoe-V1/V2 (Yu et al., CVPR 2016).

Instances differ in nameable local parts (toe, heel, sole, shaft, closure, trim), each a discrete attribute,
plus continuous proportions. Built y-up (ground at 0, length 1), flipped to image orientation by the registry.
"""
from __future__ import annotations

import numpy as np

from sbir_core.data.synthetic.geometry import Part, close, poly, rect, smooth

ATTRIBUTES = {
    "toe": ["round", "pointed", "square"],
    "heel": ["flat", "block", "stiletto", "wedge"],
    "sole": ["thin", "thick", "platform"],
    "shaft": ["low", "ankle", "mid", "tall"],
    "closure": ["none", "laces", "strap", "buckle", "zip"],
    "trim": ["plain", "toecap", "stripe", "counter"],
}


def build(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    heel_h = {"flat": 0.0, "block": u(0.10, 0.17), "stiletto": u(0.18, 0.27), "wedge": u(0.10, 0.20)}[attrs["heel"]]
    t = {"thin": u(0.02, 0.03), "thick": u(0.045, 0.065), "platform": u(0.05, 0.07)}[attrs["sole"]]
    t_front = t + (u(0.05, 0.08) if attrs["sole"] == "platform" else 0.0)
    toe_h = {"round": u(0.14, 0.18), "pointed": u(0.09, 0.12), "square": u(0.14, 0.17)}[attrs["toe"]]
    toe_x = {"round": 0.0, "pointed": -u(0.05, 0.09), "square": 0.01}[attrs["toe"]]
    collar = {"low": u(0.18, 0.24), "ankle": u(0.36, 0.44), "mid": u(0.56, 0.66), "tall": u(0.82, 0.95)}[attrs["shaft"]]
    throat_x, throat_h = u(0.42, 0.52), u(0.24, 0.30)
    heel_front, back_x = u(0.72, 0.78), 1.0

    # Underside of the sole: toe lifted a little, ball on the ground, then the shank rises to the heel seat.
    bottom = smooth(poly((toe_x + 0.02, 0.02), (0.12, 0.0), (0.32, 0.0), (0.5, heel_h * 0.35), (heel_front, heel_h),
                         (back_x - 0.01, heel_h)), n=8)
    x = bottom[:, 0]
    thickness = np.interp(x, [toe_x, 0.3, 0.45, 1.0], [t_front, t_front, t, t])
    top = bottom + np.stack([np.zeros_like(x), thickness], 1)  # the sole's upper edge (insole line)

    base = top[:, 1]
    y_at = lambda xq: float(np.interp(xq, x, base))  # noqa: E731
    toe_top = (toe_x + 0.14, y_at(toe_x + 0.14) + toe_h)
    front = {"round": [(toe_x + 0.005, y_at(0.0) + 0.04), (toe_x + 0.04, y_at(0.0) + toe_h * 0.8)],
             "pointed": [(toe_x + 0.06, y_at(0.05) + toe_h * 0.45)],
             "square": [(toe_x - 0.005, y_at(0.0) + toe_h * 0.75), (toe_x + 0.03, y_at(0.0) + toe_h)]}[attrs["toe"]]
    if attrs["shaft"] == "low":  # the opening dips from the throat to the back of the heel
        upper_line = [(throat_x, y_at(throat_x) + throat_h), (0.7, y_at(0.7) + collar * 0.9),
                      (back_x - 0.02, y_at(0.97) + collar)]
    else:
        shaft_front = throat_x + u(0.02, 0.08)
        upper_line = [(throat_x, y_at(throat_x) + throat_h), (shaft_front, y_at(throat_x) + collar),
                      (back_x - 0.04, y_at(0.97) + collar + 0.01)]
    upper_control = [(toe_x, y_at(0.0) + 0.005)] + front + [toe_top] + upper_line + [
        (back_x + 0.01, y_at(0.97) + min(collar, 0.3) * 0.5), (back_x - 0.01, y_at(0.99))]
    upper = smooth(np.array(upper_control), n=10)
    silhouette = close(np.vstack([upper, bottom[::-1]]))
    parts = [Part("outline", 0, [silhouette], fill="body", z=0),
             Part("sole", 1, [top[1:-1]], fill=None, z=3, width=0.008)]
    sole_region = close(np.vstack([bottom, top[::-1]]))
    parts.append(Part("sole", 1, [sole_region], fill="sole", z=2, in_sketch=False))

    collar_back = (back_x - 0.03, y_at(0.97) + collar)
    collar_front = upper_line[0] if attrs["shaft"] == "low" else upper_line[1]
    opening = smooth(poly(collar_front, ((collar_front[0] + collar_back[0]) / 2, max(collar_front[1], collar_back[1])
                                         - u(0.03, 0.06)), collar_back), n=6)
    parts.append(Part("opening", 1, [opening], fill=None, z=4, width=0.01))
    welt = top[(x > toe_x + 0.08) & (x < heel_front)] + [0.0, u(0.025, 0.04)]
    if attrs["sole"] != "thin" and len(welt) > 1:
        parts.append(Part("stitching", 2, [welt], fill=None, z=4, width=0.006))

    if attrs["heel"] in ("block", "stiletto"):
        w_top = u(0.16, 0.22) if attrs["heel"] == "block" else u(0.12, 0.16)
        w_bot = w_top * u(0.7, 0.9) if attrs["heel"] == "block" else u(0.02, 0.035)
        x1 = back_x - 0.01
        heel = poly((x1 - w_top, heel_h), (x1, heel_h), (x1 - 0.01, 0.0), (x1 - 0.01 - w_bot, 0.0), closed=True)
        parts.append(Part("heel", 1, [heel], fill="sole", z=1))
    elif attrs["heel"] == "wedge":
        wedge = close(np.vstack([bottom[(x >= 0.3)], [[back_x - 0.02, 0.0], [0.3, 0.0]]]))
        parts.append(Part("heel", 1, [wedge], fill="sole", z=1))

    if attrs["closure"] == "laces":
        n = int(rng.integers(3, 6))
        xs = np.linspace(toe_x + 0.25, throat_x + 0.02, n)
        lace = []
        for i, xi in enumerate(xs):
            yi = y_at(xi) + np.interp(xi, [toe_top[0], throat_x], [toe_h, throat_h])
            lace.append(poly((xi - 0.03, yi - 0.03), (xi + 0.03, yi + 0.015)))
        parts.append(Part("laces", 2, lace, fill=None, z=5, width=0.012))
        tongue = smooth(poly((throat_x - 0.03, y_at(throat_x) + throat_h), (throat_x + 0.01, y_at(throat_x) + throat_h
                                                                             + 0.07), (throat_x + 0.08, y_at(throat_x)
                                                                                           + throat_h + 0.05)), n=6)
        parts.append(Part("tongue", 2, [tongue], fill=None, z=5))
    elif attrs["closure"] in ("strap", "buckle"):
        xc = throat_x - 0.02 if attrs["closure"] == "strap" else back_x - 0.2
        h = throat_h if attrs["closure"] == "strap" else min(collar, 0.35) * 0.75
        y0 = y_at(xc) + h * 0.2
        band = poly((xc - 0.05, y0), (xc - 0.01, y0 + h * 0.85), (xc + 0.05, y0 + h * 0.85), (xc + 0.01, y0),
                    closed=True)
        parts.append(Part("strap", 2, [band], fill="accent", z=4))
        if attrs["closure"] == "buckle":
            parts.append(Part("buckle", 2, [rect(xc - 0.03, y0 + h * 0.3, xc + 0.03, y0 + h * 0.62)], fill="metal", z=6))
    elif attrs["closure"] == "zip":
        x0 = back_x - u(0.12, 0.2)
        parts.append(Part("zip", 2, [poly((x0, y_at(x0) + 0.04), (x0 + 0.02, y_at(x0) + max(collar, 0.25) - 0.02))],
                          fill=None, z=5, width=0.01))

    if attrs["trim"] == "toecap":
        cap = smooth(poly((toe_x + 0.04, y_at(0.04) + 0.005), (toe_x + 0.13, y_at(0.1) + toe_h * 0.6),
                          (toe_x + 0.2, y_at(0.2) + 0.005)), n=8)
        parts.append(Part("toecap", 2, [cap], fill=None, z=4, width=0.01))
    elif attrs["trim"] == "stripe":
        s = smooth(poly((0.25, y_at(0.25) + 0.03), (0.5, y_at(0.5) + 0.09), (0.78, y_at(0.78) + 0.04)), n=8)
        parts.append(Part("stripe", 2, [s, s + np.array([0.0, 0.035])], fill=None, z=4, width=0.014))
    elif attrs["trim"] == "counter":
        c = smooth(poly((back_x - 0.005, y_at(0.99) + 0.12), (back_x - 0.12, y_at(0.9) + 0.08),
                        (back_x - 0.2, y_at(0.8) + 0.005)), n=8)
        parts.append(Part("counter", 2, [c], fill=None, z=4, width=0.01))
    return parts

