"""Ten more categories with nameable, attribute-controlled parts (for multi-category and few-shot chapters).

Each model is ``(ATTRIBUTES, build)``; ``build(attrs, rng)`` returns parts y-up (ground at 0). Side or front views,
with a few 3/4 views (table) from :func:`~sbir_core.data.synthetic.geometry.box`.
"""
from __future__ import annotations

import numpy as np

from sbir_core.data.synthetic.geometry import (Part, box, close, ellipse, mirror_x, poly, project, quad, rect, smooth,
                                               strip, superellipse)


def _u(rng: np.random.Generator):
    return lambda lo, hi: float(rng.uniform(lo, hi))


def _profile(half: list[tuple[float, float]], n: int = 8) -> np.ndarray:
    """A closed body of revolution in side view from its right half profile ``(x >= 0, y)``, bottom to top."""
    right = smooth(np.array(half), n=n)
    return close(np.vstack([right, mirror_x(right, 0.0)[::-1]]))


# --- handbag -----------------------------------------------------------------------------------------------------------
HANDBAG = {"body": ["trapeze", "rounded", "bucket", "box"], "handle": ["arch", "twin", "chain", "none"],
           "flap": ["none", "pointed", "rounded"], "clasp": ["none", "turnlock", "zip", "buckle"]}


def handbag(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    w, h = u(0.9, 1.2), u(0.55, 0.8)
    top_w = {"trapeze": w * u(0.6, 0.75), "rounded": w * 0.9, "bucket": w * u(0.85, 1.0), "box": w}[attrs["body"]]
    if attrs["body"] == "rounded":
        body = close(smooth(poly((-w / 2, 0.1), (0, -0.01), (w / 2, 0.1), (w / 2 * 0.95, h * 0.8), (0, h),
                                 (-w / 2 * 0.95, h * 0.8)), n=8, closed=True))
    elif attrs["body"] == "bucket":
        body = close(smooth(poly((-top_w / 2, h), (-w / 2, h * 0.4), (-w / 2 * 0.8, 0), (w / 2 * 0.8, 0), (w / 2, h * 0.4),
                                 (top_w / 2, h)), n=6))
    else:
        body = poly((-w / 2, 0), (w / 2, 0), (top_w / 2, h), (-top_w / 2, h), closed=True)
    parts = [Part("body", 0, [body], fill="body", z=1)]
    if attrs["handle"] in ("arch", "chain"):
        rise = u(0.35, 0.5) if attrs["handle"] == "arch" else u(0.7, 0.9)
        spine = smooth(poly((-top_w * 0.35, h), (-top_w * 0.3, h + rise * 0.8), (0, h + rise),
                            (top_w * 0.3, h + rise * 0.8), (top_w * 0.35, h)), n=6)
        parts.append(Part("handle", 1, [strip(spine, 0.05 if attrs["handle"] == "arch" else 0.02)],
                          fill="sole" if attrs["handle"] == "arch" else "metal", z=0, strips=True))
    elif attrs["handle"] == "twin":
        loops = [strip(smooth(poly((x - 0.12, h), (x, h + 0.25), (x + 0.12, h)), n=6), 0.04) for x in
                 (-top_w * 0.18, top_w * 0.18)]
        parts.append(Part("handle", 1, loops, fill="sole", z=0, strips=True))
    flap_y = h * u(0.35, 0.55)
    if attrs["flap"] == "pointed":
        parts.append(Part("flap", 1, [poly((-top_w / 2, h), (top_w / 2, h), (0, flap_y), closed=True)], fill="accent", z=2))
    elif attrs["flap"] == "rounded":
        parts.append(Part("flap", 1, [close(smooth(poly((-top_w / 2, h), (-top_w / 2, flap_y + 0.1), (0, flap_y),
                                                        (top_w / 2, flap_y + 0.1), (top_w / 2, h)), n=6))],
                          fill="accent", z=2))
    cy = flap_y if attrs["flap"] != "none" else h * 0.7
    if attrs["clasp"] == "turnlock":
        parts.append(Part("clasp", 2, [ellipse(0, cy, 0.06, 0.05, n=16)], fill="metal", z=3))
    elif attrs["clasp"] == "zip":
        parts.append(Part("clasp", 2, [poly((-top_w * 0.42, h * 0.92), (top_w * 0.42, h * 0.92))], fill=None, z=3))
    elif attrs["clasp"] == "buckle":
        parts.append(Part("clasp", 2, [rect(-0.07, cy - 0.05, 0.07, cy + 0.05), poly((0, cy + 0.05), (0, h))],
                          fill="metal", z=3))
    return parts


# --- table (3/4 view) --------------------------------------------------------------------------------------------------
TABLE = {"top": ["rect", "round", "thick"], "legs": ["four", "pedestal", "trestle", "cross"],
         "apron": ["none", "plain", "drawer"], "shelf": ["none", "low"]}


def table(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    w, d, h = u(1.2, 1.7), u(0.6, 0.9), u(0.7, 0.9)
    t = u(0.04, 0.06) if attrs["top"] != "thick" else u(0.1, 0.14)
    if attrs["top"] == "round":
        c = project([(w / 2, h + t, d / 2)])[0]
        top = [ellipse(c[0], c[1], w / 2 + 0.1, d * 0.32, n=40), poly(c + [-w / 2 - 0.1, 0], c + [-w / 2 - 0.1, -t]),
               poly(c + [w / 2 + 0.1, 0], c + [w / 2 + 0.1, -t])]
    else:
        top = box(0, w, h, h + t, 0, d)
    parts = [Part("top", 0, top, fill="wood", z=3)]
    feet = [(0.06, 0.06), (w - 0.06, 0.06), (0.06, d - 0.06), (w - 0.06, d - 0.06)]
    kind = attrs["legs"]
    if kind == "four":
        legs = [quad((x, h, z), (x, 0, z), 0.07) for x, z in feet[::-1]]
    elif kind == "pedestal":
        legs = [quad((w / 2, h, d / 2), (w / 2, 0.08, d / 2), 0.14), box(w / 2 - 0.3, w / 2 + 0.3, 0, 0.07,
                                                                         d / 2 - 0.2, d / 2 + 0.2)[0]]
    elif kind == "trestle":
        legs = []
        for x in (0.15, w - 0.15):
            legs += [quad((x, h, d / 2), (x, 0.05, d / 2), 0.1), quad((x, 0.03, 0.0), (x, 0.03, d), 0.06)]
        legs.append(quad((0.15, h * 0.35, d / 2), (w - 0.15, h * 0.35, d / 2), 0.05))
    else:
        legs = []
        for x in (0.1, w - 0.1):
            legs += [quad((x - 0.1, h, 0.05), (x + 0.1, 0, d - 0.05), 0.06),
                     quad((x + 0.1, h, 0.05), (x - 0.1, 0, d - 0.05), 0.06)]
    parts.append(Part("legs", 1, legs, fill="wood", z=1, strips=kind != "pedestal"))
    if attrs["apron"] != "none" and attrs["top"] != "round":
        parts.append(Part("apron", 1, [box(0.04, w - 0.04, h - 0.12, h, 0.04, d - 0.04)[0]], fill="wood", z=2))
        if attrs["apron"] == "drawer":
            parts.append(Part("drawer", 2, [rect(w * 0.35, h - 0.1, w * 0.65, h - 0.02),
                                            ellipse(w / 2, h - 0.06, 0.015, 0.015, n=8)], fill="dark", z=4))
    if attrs["shelf"] == "low" and kind == "four":
        parts.append(Part("shelf", 2, box(0.06, w - 0.06, 0.18, 0.22, 0.06, d - 0.06)[:1], fill="wood", z=2))
    return parts


# --- lamp --------------------------------------------------------------------------------------------------------------
LAMP = {"base": ["disc", "square", "tripod"], "stem": ["straight", "curved", "jointed"],
        "shade": ["cone", "drum", "dome", "bell"], "switch": ["none", "knob", "chain"]}


def lamp(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    stem_h = u(0.9, 1.4)
    parts = []
    if attrs["base"] == "disc":
        parts.append(Part("base", 1, [close(smooth(poly((-0.3, 0), (0.3, 0), (0.28, 0.06), (0.08, 0.1), (-0.08, 0.1),
                                                        (-0.28, 0.06)), n=4))], fill="metal", z=1))
    elif attrs["base"] == "square":
        parts.append(Part("base", 1, [rect(-0.25, 0, 0.25, 0.12)], fill="metal", z=1))
    else:
        parts.append(Part("base", 1, [strip(poly((0, 0.35), (x, 0.0)), 0.035) for x in (-0.35, 0.0, 0.35)],
                          fill="metal", z=1, strips=True))
    y0 = 0.1
    if attrs["stem"] == "straight":
        spine, top = poly((0, y0), (0, stem_h)), np.array([0.0, stem_h])
    elif attrs["stem"] == "curved":
        spine = smooth(poly((0, y0), (0.05, stem_h * 0.6), (0.25, stem_h * 0.95), (0.45, stem_h)), n=8)
        top = spine[-1]
    else:
        spine = poly((0, y0), (0.15, stem_h * 0.6), (-0.05, stem_h))
        top = spine[-1]
    parts.append(Part("stem", 1, [strip(spine, 0.045)], fill="metal", z=0, strips=True))
    sw, sh = u(0.35, 0.5), u(0.35, 0.5)
    bottom_y = top[1] - sh * 0.55
    cx = float(top[0])
    shade = {"cone": poly((cx - sw, bottom_y), (cx + sw, bottom_y), (cx + sw * 0.45, bottom_y + sh),
                          (cx - sw * 0.45, bottom_y + sh), closed=True),
             "drum": rect(cx - sw * 0.8, bottom_y, cx + sw * 0.8, bottom_y + sh),
             "dome": close(np.vstack([ellipse(cx, bottom_y, sw, sh, n=24, start=0, stop=np.pi)])),
             "bell": close(smooth(poly((cx - sw, bottom_y), (cx - sw * 0.7, bottom_y + sh * 0.3), (cx - sw * 0.35,
                                                                                                   bottom_y + sh * 0.9),
                                       (cx, bottom_y + sh), (cx + sw * 0.35, bottom_y + sh * 0.9),
                                       (cx + sw * 0.7, bottom_y + sh * 0.3), (cx + sw, bottom_y)), n=5))}[attrs["shade"]]
    parts.insert(0, Part("shade", 0, [shade], fill="light", z=3))
    if attrs["switch"] == "knob":
        parts.append(Part("switch", 2, [ellipse(cx + 0.06, bottom_y - 0.04, 0.035, 0.035, n=12)], fill="dark", z=4))
    elif attrs["switch"] == "chain":
        parts.append(Part("switch", 2, [poly((cx + sw * 0.3, bottom_y), (cx + sw * 0.3, bottom_y - 0.25)),
                                        ellipse(cx + sw * 0.3, bottom_y - 0.27, 0.02, 0.02, n=8)], fill=None, z=4))
    return parts


# --- mug ---------------------------------------------------------------------------------------------------------------
MUG = {"body": ["cylinder", "tapered", "barrel"], "handle": ["round", "square", "d-shape", "none"],
       "band": ["none", "stripe", "rim"], "foot": ["none", "ring"]}


def mug(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    r, h = u(0.3, 0.4), u(0.7, 1.0)
    half = {"cylinder": [(r, 0), (r, h)], "tapered": [(r * 0.75, 0), (r * 1.1, h)],
            "barrel": [(r * 0.85, 0), (r * 1.08, h * 0.5), (r * 0.85, h)]}[attrs["body"]]
    body = close(np.vstack([smooth(np.array(half), n=8), mirror_x(smooth(np.array(half), n=8), 0.0)[::-1]]))
    parts = [Part("body", 0, [body], fill="body", z=1)]
    rim = ellipse(0, h, half[-1][0], 0.06, n=32)
    parts.append(Part("rim", 1, [rim], fill="light", z=2))
    xr = max(p[0] for p in half)
    if attrs["handle"] != "none":
        spine = {"round": ellipse(xr, h * 0.5, 0.22, h * 0.28, n=16, start=-np.pi / 2, stop=np.pi / 2),
                 "square": poly((xr - 0.02, h * 0.78), (xr + 0.22, h * 0.78), (xr + 0.22, h * 0.25), (xr - 0.02, h * 0.25)),
                 "d-shape": smooth(poly((xr - 0.02, h * 0.85), (xr + 0.28, h * 0.7), (xr + 0.18, h * 0.15),
                                        (xr - 0.02, h * 0.15)), n=6)}[attrs["handle"]]
        parts.append(Part("handle", 1, [strip(spine, 0.06)], fill="body", z=0, strips=True))
    if attrs["band"] == "stripe":
        parts.append(Part("band", 2, [rect(-xr * 0.97, h * 0.4, xr * 0.97, h * 0.55)], fill="accent", z=3))
    elif attrs["band"] == "rim":
        parts.append(Part("band", 2, [poly((-half[-1][0], h * 0.88), (half[-1][0], h * 0.88))], fill=None, z=3))
    if attrs["foot"] == "ring":
        parts.append(Part("foot", 2, [rect(-half[0][0] * 0.9, -0.04, half[0][0] * 0.9, 0.0)], fill="dark", z=0))
    return parts


# --- bottle ------------------------------------------------------------------------------------------------------------
BOTTLE = {"body": ["round", "square", "slim", "flask"], "neck": ["short", "long"],
          "cap": ["screw", "cork", "pump", "dropper"], "label": ["none", "rect", "oval"]}


def bottle(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    r = {"round": u(0.3, 0.36), "square": u(0.3, 0.36), "slim": u(0.18, 0.23), "flask": u(0.35, 0.42)}[attrs["body"]]
    h = {"round": u(0.8, 1.0), "square": u(0.8, 1.0), "slim": u(1.1, 1.3), "flask": u(0.6, 0.75)}[attrs["body"]]
    neck_r, neck_h = u(0.07, 0.1), {"short": u(0.12, 0.2), "long": u(0.35, 0.5)}[attrs["neck"]]
    if attrs["body"] == "square":
        half = [(r, 0), (r, h * 0.8), (neck_r, h), (neck_r, h + neck_h)]
        right = np.array(half)
    elif attrs["body"] == "flask":
        right = smooth(np.array([(r * 0.6, 0), (r, h * 0.4), (r * 0.6, h * 0.9), (neck_r, h), (neck_r, h + neck_h)]), n=6)
    else:
        right = smooth(np.array([(r, 0), (r, h * 0.7), (r * 0.7, h * 0.9), (neck_r, h), (neck_r, h + neck_h)]), n=6)
    outline = close(np.vstack([right, mirror_x(right, 0.0)[::-1]]))
    parts = [Part("body", 0, [outline], fill="glass", z=1)]
    y = h + neck_h
    cap = {"screw": rect(-neck_r * 1.2, y, neck_r * 1.2, y + 0.12),
           "cork": poly((-neck_r * 0.9, y), (neck_r * 0.9, y), (neck_r * 1.1, y + 0.14), (-neck_r * 1.1, y + 0.14),
                        closed=True),
           "pump": poly((-neck_r * 1.2, y), (neck_r * 1.2, y), (neck_r * 1.2, y + 0.1), (0.03, y + 0.1), (0.03, y + 0.2),
                        (0.25, y + 0.2), (0.25, y + 0.26), (-0.05, y + 0.26), (-0.05, y + 0.1), (-neck_r * 1.2, y + 0.1),
                        closed=True),
           "dropper": close(np.vstack([rect(-neck_r * 1.2, y, neck_r * 1.2, y + 0.08)[:-1],
                                       ellipse(0, y + 0.17, 0.09, 0.11, n=16, start=-0.3, stop=np.pi + 0.3)[::-1]]))
           }[attrs["cap"]]
    parts.append(Part("cap", 1, [cap], fill="dark", z=2))
    if attrs["label"] == "rect":
        parts.append(Part("label", 2, [rect(-r * 0.8, h * 0.2, r * 0.8, h * 0.55)], fill="light", z=3))
    elif attrs["label"] == "oval":
        parts.append(Part("label", 2, [ellipse(0, h * 0.38, r * 0.65, h * 0.18, n=24)], fill="light", z=3))
    return parts


# --- teapot ------------------------------------------------------------------------------------------------------------
TEAPOT = {"body": ["round", "squat", "tall"], "spout": ["straight", "curved", "short"],
          "handle": ["side", "top"], "knob": ["ball", "ring", "flat"]}


def teapot(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    r, h = {"round": (u(0.45, 0.5), u(0.75, 0.85)), "squat": (u(0.55, 0.6), u(0.5, 0.6)),
            "tall": (u(0.35, 0.4), u(0.95, 1.1))}[attrs["body"]]
    body = _profile([(r * 0.6, 0), (r, h * 0.45), (r * 0.55, h)], n=8)
    parts = [Part("body", 0, [body], fill="body", z=1)]
    lid = close(smooth(poly((-r * 0.5, h), (0, h + 0.12), (r * 0.5, h)), n=6))
    parts.append(Part("lid", 1, [lid], fill="body", z=2))
    if attrs["knob"] == "ball":
        knob = ellipse(0, h + 0.17, 0.06, 0.06, n=12)
    elif attrs["knob"] == "ring":
        knob = ellipse(0, h + 0.19, 0.08, 0.08, n=14)
    else:
        knob = rect(-0.1, h + 0.11, 0.1, h + 0.15)
    parts.append(Part("knob", 2, [knob], fill="dark", z=3))
    spine = {"straight": poly((-r * 0.9, h * 0.35), (-r - 0.35, h * 0.85)),
             "curved": smooth(poly((-r * 0.9, h * 0.3), (-r - 0.25, h * 0.45), (-r - 0.35, h * 0.9)), n=6),
             "short": poly((-r * 0.9, h * 0.45), (-r - 0.18, h * 0.65))}[attrs["spout"]]
    parts.append(Part("spout", 1, [strip(spine, 0.09)], fill="body", z=0, strips=True))
    if attrs["handle"] == "side":
        spine = ellipse(r * 0.85, h * 0.5, 0.25, h * 0.3, n=16, start=-np.pi / 2, stop=np.pi / 2)
    else:
        spine = ellipse(0, h, r * 0.7, 0.45, n=20, start=0, stop=np.pi)
    parts.append(Part("handle", 1, [strip(spine, 0.06)], fill="dark", z=0, strips=True))
    return parts


# --- vase --------------------------------------------------------------------------------------------------------------
VASE = {"body": ["amphora", "cylinder", "bulb", "flared"], "handles": ["none", "ears"],
        "rim": ["plain", "lip", "pinched"], "band": ["none", "one", "two"]}


def vase(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    h, r = u(1.0, 1.3), u(0.28, 0.36)
    neck = {"plain": r * 0.45, "lip": r * 0.6, "pinched": r * 0.3}[attrs["rim"]]
    half = {"amphora": [(r * 0.4, 0), (r, h * 0.4), (r * 0.45, h * 0.8), (neck, h)],
            "cylinder": [(r * 0.8, 0), (r * 0.8, h * 0.5), (r * 0.8, h * 0.99), (r * 0.8, h)],
            "bulb": [(r * 0.5, 0), (r * 1.1, h * 0.3), (r * 0.25, h * 0.75), (neck, h)],
            "flared": [(r * 0.4, 0), (r * 0.5, h * 0.5), (r * 0.7, h * 0.85), (r * 1.0, h)]}[attrs["body"]]
    parts = [Part("body", 0, [_profile(half, n=8)], fill="body", z=1)]
    top_r = half[-1][0]
    if attrs["rim"] == "lip":
        parts.append(Part("rim", 1, [rect(-top_r * 1.25, h - 0.02, top_r * 1.25, h + 0.05)], fill="body", z=2))
    else:
        parts.append(Part("rim", 1, [ellipse(0, h, top_r, 0.04, n=20)], fill="dark", z=2))
    if attrs["handles"] == "ears":
        ears = [strip(ellipse(half[1][0] * 0.9, h * 0.62, 0.16, 0.14, n=10, start=-np.pi / 2, stop=np.pi / 2)
                       * [s, 1], 0.04) for s in (1, -1)]
        parts.append(Part("handles", 1, ears, fill="body", z=0, strips=True))
    for i in range({"none": 0, "one": 1, "two": 2}[attrs["band"]]):
        y = h * (0.3 + 0.18 * i)
        x = float(np.interp(y, [p[1] for p in half], [p[0] for p in half]))
        parts.append(Part(f"band{i + 1}", 2, [poly((-x, y), (x, y))], fill=None, z=3, width=0.03))
    return parts


# --- backpack ----------------------------------------------------------------------------------------------------------
BACKPACK = {"body": ["rounded", "square", "dome"], "pocket": ["none", "rect", "round", "two"],
            "handle": ["loop", "none"], "straps": ["visible", "hidden"]}


def backpack(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    w, h = u(0.8, 1.0), u(1.05, 1.3)
    body = {"rounded": rect(-w / 2, 0, w / 2, h, radius=0.2),
            "square": rect(-w / 2, 0, w / 2, h, radius=0.05),
            "dome": close(np.vstack([poly((-w / 2, h * 0.6), (-w / 2, 0), (w / 2, 0)),
                                     ellipse(0, h * 0.6, w / 2, h * 0.4, n=24, start=0, stop=np.pi)])),
            }[attrs["body"]]
    parts = [Part("body", 0, [body], fill="body", z=1)]
    if attrs["pocket"] == "rect":
        parts.append(Part("pocket", 1, [rect(-w * 0.35, 0.08, w * 0.35, h * 0.42, radius=0.04)], fill="accent", z=2))
    elif attrs["pocket"] == "round":
        parts.append(Part("pocket", 1, [close(np.vstack([poly((-w * 0.35, 0.08), (w * 0.35, 0.08)),
                                                         ellipse(0, 0.25, w * 0.35, h * 0.22, n=20, start=0,
                                                                 stop=np.pi)[::-1][:-1]]))], fill="accent", z=2))
    elif attrs["pocket"] == "two":
        parts.append(Part("pocket", 1, [rect(-w * 0.42, 0.08, -w * 0.05, h * 0.38, radius=0.03),
                                        rect(w * 0.05, 0.08, w * 0.42, h * 0.38, radius=0.03)], fill="accent", z=2))
    parts.append(Part("zip", 2, [ellipse(0, h * 0.55, w * 0.4, h * 0.3, n=20, start=0.15, stop=np.pi - 0.15)],
                      fill=None, z=3, width=0.012))
    if attrs["handle"] == "loop":
        parts.append(Part("handle", 2, [strip(ellipse(0, h, 0.12, 0.1, n=10, start=0, stop=np.pi), 0.04)],
                          fill="dark", z=0, strips=True))
    if attrs["straps"] == "visible":
        straps = [strip(smooth(poly((s * w * 0.3, h * 0.9), (s * (w / 2 + 0.1), h * 0.5), (s * w * 0.42, 0.05)), n=6),
                         0.07) for s in (-1, 1)]
        parts.append(Part("straps", 1, straps, fill="dark", z=0, strips=True))
    return parts


# --- guitar ------------------------------------------------------------------------------------------------------------
GUITAR = {"body": ["classic", "dreadnought", "cutaway"], "hole": ["round", "f-holes", "pickups"],
          "headstock": ["three-three", "inline", "slotted"], "guard": ["none", "teardrop"]}


def guitar(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    lw, uw, waist = {"classic": (0.42, 0.32, 0.26), "dreadnought": (0.46, 0.4, 0.38),
                     "cutaway": (0.44, 0.34, 0.28)}[attrs["body"]]
    L = u(1.0, 1.15)
    ctrl = [(0, 0), (lw, 0.22 * L), (waist, 0.55 * L), (uw, 0.8 * L), (0.1, L)]
    right = smooth(np.array(ctrl), n=8)
    left = mirror_x(right, 0.0)
    if attrs["body"] == "cutaway":
        left = left[left[:, 1] < 0.7 * L]
        left = np.vstack([left, [[-0.2, 0.72 * L], [-0.12, 0.9 * L], [-0.1, L]]])
    body = close(np.vstack([right, left[::-1]]))
    parts = [Part("body", 0, [body], fill="wood", z=1)]
    neck_top = L + u(0.6, 0.75)
    parts.append(Part("neck", 1, [rect(-0.05, L * 0.6, 0.05, neck_top)], fill="dark", z=2))
    head = {"three-three": poly((-0.07, neck_top), (0.07, neck_top), (0.1, neck_top + 0.3), (-0.1, neck_top + 0.3),
                                closed=True),
            "inline": close(smooth(poly((-0.05, neck_top), (0.05, neck_top), (0.18, neck_top + 0.15),
                                        (0.12, neck_top + 0.32), (-0.05, neck_top + 0.3)), n=4)),
            "slotted": rect(-0.09, neck_top, 0.09, neck_top + 0.3, radius=0.03)}[attrs["headstock"]]
    parts.append(Part("headstock", 1, [head], fill="dark", z=2))
    if attrs["headstock"] == "slotted":
        parts.append(Part("slots", 2, [rect(-0.05, neck_top + 0.05, -0.01, neck_top + 0.25),
                                       rect(0.01, neck_top + 0.05, 0.05, neck_top + 0.25)], fill="light", z=3))
    if attrs["hole"] == "round":
        parts.append(Part("hole", 2, [ellipse(0, 0.6 * L, 0.11, 0.11, n=20)], fill="dark", z=3))
    elif attrs["hole"] == "f-holes":
        f = smooth(poly((0, 0.0), (0.03, 0.08), (-0.02, 0.18), (0.01, 0.26)), n=4)
        parts.append(Part("hole", 2, [f + [-0.2, 0.35 * L], f + [0.2, 0.35 * L]], fill=None, z=3, width=0.02))
    else:
        parts.append(Part("hole", 2, [rect(-0.12, 0.45 * L, 0.12, 0.52 * L), rect(-0.12, 0.62 * L, 0.12, 0.69 * L)],
                          fill="dark", z=3))
    parts.append(Part("bridge", 2, [rect(-0.14, 0.2 * L, 0.14, 0.25 * L)], fill="dark", z=3))
    if attrs["guard"] == "teardrop":
        parts.append(Part("guard", 2, [close(smooth(poly((0.12, 0.5 * L), (0.28, 0.45 * L), (0.3, 0.6 * L),
                                                         (0.16, 0.68 * L)), n=5, closed=True))], fill="dark", z=2))
    return parts


# --- clock -------------------------------------------------------------------------------------------------------------
CLOCK = {"case": ["round", "square", "octagon", "arched"], "time": ["3:00", "7:30", "10:10", "12:45", "5:20"],
         "marks": ["ticks", "dots", "none"], "feet": ["none", "bells"]}


def clock(attrs: dict[str, str], rng: np.random.Generator) -> list[Part]:
    u = _u(rng)
    r, cy = u(0.45, 0.55), 0.6
    if attrs["case"] == "round":
        case = ellipse(0, cy, r, r, n=48)
    elif attrs["case"] == "square":
        case = rect(-r, cy - r, r, cy + r, radius=0.08)
    elif attrs["case"] == "octagon":
        angle = np.pi / 8
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        case = (superellipse(0, 0, r, r, 1.0, n=8) @ turn.T) * 1.08 + [0, cy]
    else:
        case = close(np.vstack([poly((-r, cy + r * 0.2), (-r, cy - r), (r, cy - r), (r, cy + r * 0.2)),
                                ellipse(0, cy + r * 0.2, r, r * 0.8, n=20, start=0, stop=np.pi)[1:]]))
    parts = [Part("case", 0, [case], fill="body", z=1), Part("face", 1, [ellipse(0, cy, r * 0.82, r * 0.82, n=40)],
                                                                fill="light", z=2)]
    hours, minutes = (int(x) for x in attrs["time"].split(":"))
    a_min = np.pi / 2 - 2 * np.pi * minutes / 60
    a_hour = np.pi / 2 - 2 * np.pi * (hours % 12 + minutes / 60) / 12
    hands = [poly((0, cy), (r * 0.45 * np.cos(a_hour), cy + r * 0.45 * np.sin(a_hour))),
             poly((0, cy), (r * 0.7 * np.cos(a_min), cy + r * 0.7 * np.sin(a_min)))]
    parts.append(Part("hands", 1, hands, fill=None, z=4, width=0.035))
    if attrs["marks"] != "none":
        marks = []
        for k in range(12):
            a = 2 * np.pi * k / 12
            c, s = np.cos(a), np.sin(a)
            if attrs["marks"] == "ticks":
                marks.append(poly((r * 0.68 * c, cy + r * 0.68 * s), (r * 0.78 * c, cy + r * 0.78 * s)))
            else:
                marks.append(ellipse(r * 0.72 * c, cy + r * 0.72 * s, 0.02, 0.02, n=6))
        parts.append(Part("marks", 2, marks, fill=None if attrs["marks"] == "ticks" else "dark", z=3, width=0.02))
    if attrs["feet"] == "bells":
        parts.append(Part("bells", 2, [ellipse(s * r * 0.6, cy + r * 1.05, 0.18, 0.12, n=14, start=0, stop=np.pi)
                                       for s in (-1, 1)], fill="metal", z=0))
        parts.append(Part("feet", 2, [poly((s * r * 0.5, cy - r * 0.85), (s * r * 0.75, cy - r * 1.1)) for s in (-1, 1)],
                          fill=None, z=0, width=0.04))
    return parts


MODELS = {"handbag": (HANDBAG, handbag), "table": (TABLE, table), "lamp": (LAMP, lamp), "mug": (MUG, mug),
          "bottle": (BOTTLE, bottle), "teapot": (TEAPOT, teapot), "vase": (VASE, vase),
          "backpack": (BACKPACK, backpack), "guitar": (GUITAR, guitar), "clock": (CLOCK, clock)}
