"""Where does attention look? Attention masks of a trained model, scored against the synthetic benchmark's parts.

The papers show attention masks as pictures (DSSA Fig. 5, IJCV Fig. 6); on the synthetic benchmark the generator
knows which part tells an instance from its look-alikes, so the masks can be scored:

* for every test sketch, its photo's *nearest look-alikes* are the gallery photos that differ from it in the fewest
  attributes; the parts that carry those attributes (``PARTS_OF_ATTRIBUTE``) are the *discriminative parts*;
* the attention *peak* is the centre of the mask's largest cell, mapped back to the 256 px frame of the sketch (or
  photo) through the same centre crop that evaluation uses;
* the score is the share of sketches (photos) whose peak lies inside a discriminative part's box, next to two
  chance levels: a peak drawn uniformly over the mask's cells, and one drawn uniformly over the cells on the object;
  the share of the attention *mass* on those cells is reported too (a uniform mask puts the uniform chance there).

A sketch is scored only when a discriminative attribute has a box in that sketch (a part's box, or for an attribute of
the outline such as a shoe's toe, a fixed share of the outline box, ``OUTLINE_REGIONS``); the number scored is
returned with the score.

:func:`score_model` scores a model's sketch and photo masks on a synthetic test split; :func:`judge` turns the hits of
trained models, of the same models untrained and the chance level into a verdict, given only for models that retrieve
(acc@1 at ``MIN_ACC1_TIMES_CHANCE`` times chance or better) and whose training measurably moved the peaks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sbir_core.compare import Verdict, paired_bootstrap
from sbir_core.data.views import crop_views
from sbir_core.models import SBIRModel, photo_input, sketch_input
from sbir_core.models.attention import AttendedBackbone

#: The parts (names in the synthetic metadata's part boxes) that carry each attribute, read off the generator's part
#: models (``sbir_core.data.synthetic``); an attribute of the global shape (a shoe's toe) has none, see below.
PARTS_OF_ATTRIBUTE: dict[str, dict[str, tuple[str, ...]]] = {
    "shoe": {"heel": ("heel",), "sole": ("sole", "stitching"), "shaft": ("opening",),
             "closure": ("laces", "tongue", "strap", "buckle", "zip"), "trim": ("toecap", "stripe", "counter")},
    "chair": {"back": ("back", "slats", "rails", "window"), "arms": ("arms",), "legs": ("legs",),
              "seat": ("seat", "seam"), "stretcher": ("stretcher",)},
}
#: Attributes of the global shape have no part of their own; they are located as a share of the outline box
#: ``(x0, y0, x1, y1)``. A shoe (toe to the left, y down) has its toe in the front quarter of its length, within 0.3
#: of its length above the ground (the generator's toe is at most 0.18 of the length high, on a sole).
OUTLINE_REGIONS = {
    "shoe": {"toe": lambda x0, y0, x1, y1: [x0, max(y0, y1 - 0.3 * (x1 - x0)), x0 + 0.25 * (x1 - x0), y1]},
}
FRAME = 256  # the synthetic sketches' and photos' coordinate frame (pixels)
MIN_ACC1_TIMES_CHANCE = 10  # a verdict on where attention looks needs a model that retrieves at 10x chance or better


@dataclass
class PeakScore:
    """How often attention peaks fall in a discriminative part, and the two chance levels to compare with."""

    hits: np.ndarray  # (n_scored,) bool: the peak lies in a discriminative part's box
    mass: np.ndarray  # (n_scored,) share of the attention mass on cells inside those boxes
    on_object: np.ndarray  # (n_scored,) bool: the peak lies inside the object's outline box at all
    chance_uniform: np.ndarray  # (n_scored,) share of mask cells inside those boxes
    chance_object: np.ndarray  # (n_scored,) the same share among the cells on the object (its outline box)
    scored: np.ndarray  # (n_scored,) indices of the scored images

    @property
    def rate(self) -> float:
        return float(self.hits.mean()) if len(self.hits) else float("nan")

    def summary(self) -> dict[str, float]:
        return {"peak_in_part": self.rate, "mass_in_part": float(self.mass.mean()),
                "peak_on_object": float(self.on_object.mean()),
                "chance_uniform": float(self.chance_uniform.mean()),
                "chance_on_object": float(self.chance_object.mean()), "n_scored": int(len(self.hits))}


def discriminative_attributes(attributes: list[dict[str, str]], gallery_index: np.ndarray) -> list[set[str]]:
    """For each query (whose photo is ``gallery_index[i]``), the attributes in which its photo differs from its
    nearest look-alikes: the other gallery photos with the fewest differing attributes (ties: the union)."""
    names = sorted(attributes[0])
    table = np.array([[a[n] for n in names] for a in attributes])
    differs = table[:, None, :] != table[None, :, :]  # (m, m, n_attributes)
    counts = differs.sum(-1)
    np.fill_diagonal(counts, len(names) + 1)
    out = []
    for p in np.asarray(gallery_index):
        nearest = np.flatnonzero(counts[p] == counts[p].min())
        out.append({names[k] for k in np.flatnonzero(differs[p, nearest].any(0))})
    return out


def part_boxes(boxes: dict[str, list[float]], attributes: set[str], category: str) -> list[list[float]]:
    """The boxes ``[x0, y0, x1, y1]`` of the parts that carry ``attributes``."""
    if category not in PARTS_OF_ATTRIBUTE:
        raise ValueError(f"no part map for category {category!r}; known: {sorted(PARTS_OF_ATTRIBUTE)}")
    mapping = PARTS_OF_ATTRIBUTE[category]
    known = {p for parts in mapping.values() for p in parts} | {"outline"}
    unknown = set(boxes) - known
    if unknown:
        raise ValueError(f"parts {sorted(unknown)} of category {category!r} are not in PARTS_OF_ATTRIBUTE")
    regions = OUTLINE_REGIONS.get(category, {})
    out = [boxes[p] for a in sorted(attributes) for p in mapping.get(a, ()) if p in boxes]
    return out + [[round(v, 2) for v in regions[a](*boxes["outline"])] for a in sorted(attributes)
                  if a in regions and "outline" in boxes]


@torch.no_grad()
def attention_masks(model: SBIRModel, images: torch.Tensor, kind: str, size: int, batch_size: int = 64) -> np.ndarray:
    """The attention masks (n, h, w) of the sketch or photo branch on the centre crops of a uint8 image stack.

    ``images``: sketches (n, S, S) with ink = 255, or photos (n, S, S, 3); ``size``: the network's input side.
    """
    if kind not in ("sketch", "photo"):
        raise ValueError(f"kind must be 'sketch' or 'photo', got {kind!r}")
    branch = model.sketch if kind == "sketch" or model.photo is None else model.photo
    backbone = branch.backbone
    if not isinstance(backbone, AttendedBackbone):
        raise ValueError("the model has no attention module (build it as 'attention' or 'attention-fusion')")
    to_input = sketch_input if kind == "sketch" else photo_input
    device = next(model.parameters()).device
    c = (images.shape[1] - size) // 2
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, images.shape[0], batch_size):
            chunk = images[i:i + batch_size]
            n = chunk.shape[0]
            x = crop_views(chunk, size, torch.full((n,), c), torch.full((n,), c), torch.zeros(n, dtype=torch.bool))
            out.append(backbone(to_input(x.to(device)))[backbone.mask_name][:, 0].float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def cell_centres(shape: tuple[int, int], side: int, size: int, frame: int = FRAME) -> tuple[np.ndarray, np.ndarray]:
    """Centres (x, y) in the ``frame`` of the cells of an (h, w) mask over the centre ``size`` crop of a ``side``
    image (which shows the whole ``frame``)."""
    h, w = shape
    c = (side - size) // 2
    xs = (c + (np.arange(w) + 0.5) * size / w) * frame / side
    ys = (c + (np.arange(h) + 0.5) * size / h) * frame / side
    return np.meshgrid(xs, ys)


def _inside(x: np.ndarray, y: np.ndarray, boxes: list[list[float]]) -> np.ndarray:
    hit = np.zeros(np.shape(x), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        hit |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return hit


def peak_in_part(masks: np.ndarray, boxes: list[list[list[float]]], outlines: list[list[float]], side: int,
                 size: int) -> PeakScore:
    """Score masks (n, h, w) against each image's discriminative part boxes (frame pixels); see the module doc."""
    if len(masks) != len(boxes) or len(boxes) != len(outlines):
        raise ValueError(f"{len(masks)} masks, {len(boxes)} box lists and {len(outlines)} outlines differ in number")
    xs, ys = cell_centres(masks.shape[1:], side, size)
    hits, mass, peak_on_object, uniform, on_object, scored = [], [], [], [], [], []
    for i, (mask, part, outline) in enumerate(zip(masks, boxes, outlines)):
        if not part:
            continue
        inside = _inside(xs, ys, part)
        obj = _inside(xs, ys, [outline])
        peak = np.unravel_index(np.argmax(mask), mask.shape)
        hits.append(bool(inside[peak]))
        mass.append(float(mask[inside].sum() / mask.sum()))
        peak_on_object.append(bool(obj[peak]))
        uniform.append(float(inside.mean()))
        on_object.append(float((inside & obj).sum() / max(obj.sum(), 1)))
        scored.append(i)
    return PeakScore(np.array(hits, dtype=bool), np.array(mass), np.array(peak_on_object, dtype=bool),
                     np.array(uniform), np.array(on_object), np.array(scored, dtype=int))


def synthetic_part_targets(data, split: str = "test") -> dict[str, list]:
    """Discriminative part boxes and outline boxes of a synthetic split's sketches and of its gallery photos.

    Returns ``{"sketch_boxes", "sketch_outlines", "photo_boxes", "photo_outlines"}``, lists aligned with the split's
    sketches and photos; a photo's discriminative attributes are those against its own nearest look-alikes.
    """
    if not data.meta or "photos" not in data.meta:
        raise ValueError(f"{data.root}: no synthetic metadata (part boxes); the score needs the synthetic benchmark")
    part = getattr(data, split)
    category = data.meta["category"]
    photos = [data.meta["photos"][name] for name in part.photo_names]
    attrs = [p["attributes"] for p in photos]
    per_photo = discriminative_attributes(attrs, np.arange(len(photos)))
    per_sketch = [per_photo[p] for p in part.positives]
    sketches = [data.meta["sketches"][key] for key in part.sketch_keys]
    return {
        "sketch_boxes": [part_boxes(s["part_boxes"], a, category) for s, a in zip(sketches, per_sketch)],
        "sketch_outlines": [s["part_boxes"]["outline"] for s in sketches],
        "photo_boxes": [part_boxes(p["part_boxes"], a, category) for p, a in zip(photos, per_photo)],
        "photo_outlines": [p["part_boxes"]["outline"] for p in photos],
    }


def has_attention(model: SBIRModel) -> bool:
    """Whether the model's sketch branch has an attention module (the ``attention`` and ``attention-fusion`` models)."""
    return isinstance(model.sketch.backbone, AttendedBackbone)


def score_model(model: SBIRModel, sketches: torch.Tensor, photos: torch.Tensor, size: int,
                targets: dict[str, list]) -> dict[str, PeakScore]:
    """``{"sketch": ..., "photo": ...}``: the peak scores of a model's masks on a synthetic test split's uint8
    sketches and photos, in order, against that split's :func:`synthetic_part_targets`."""
    side = sketches.shape[1]
    return {kind: peak_in_part(attention_masks(model, stack, kind, size), targets[f"{kind}_boxes"],
                               targets[f"{kind}_outlines"], side, size)
            for kind, stack in (("sketch", sketches), ("photo", photos))}


@dataclass(frozen=True)
class AttentionVerdict:
    """Does the attention peak on the discriminative parts? See :func:`judge`."""

    rate: float  # share of the trained models' peaks in a discriminative part (over seeds and images)
    learned: Verdict  # trained peaks - untrained peaks (the same seeds' initial weights)
    vs_chance: Verdict  # trained peaks - chance on the object
    label: str  # vs_chance's label, or "no verdict"
    reason: str  # one sentence


def judge(trained: np.ndarray, untrained: np.ndarray, chance: np.ndarray, acc1: float,
          gallery: int) -> AttentionVerdict:
    """A verdict on "attention finds the discriminative parts" (DSSA Fig. 5, IJCV Fig. 6, shown there as pictures).

    ``trained``, ``untrained``: (seeds, images) peak hits of the trained models and of the same models at their
    initial weights; ``chance``: (seeds, images) chance on the object; ``acc1``: the trained models' mean acc@1 on a
    gallery of ``gallery`` photos. Both differences go through :func:`~sbir_core.compare.paired_bootstrap`. The
    verdict (trained against chance) is given only for a model that retrieves at ``MIN_ACC1_TIMES_CHANCE`` times
    chance or better, and only where training measurably moved the peaks; otherwise it is "no verdict".
    """
    learned, vs_chance = paired_bootstrap(trained, untrained), paired_bootstrap(trained, chance)
    floor = MIN_ACC1_TIMES_CHANCE / gallery
    if acc1 < floor:
        reason = (f"the model retrieves at {100 * acc1:.1f}% acc@1, below the {100 * floor:.0f}% a verdict needs: too "
                  "weak a model for its attention to say where the parts are.")
    elif not learned.resolved:
        reason = ("the trained masks place their peaks no differently from an untrained model's, so this measure "
                  "cannot say what training taught the attention.")
    else:
        reason = (f"training moved the peaks {'towards' if learned.delta > 0 else 'away from'} the parts, and "
                  f"against chance on the object the claim is {vs_chance.label}.")
    label = vs_chance.label if acc1 >= floor and learned.resolved else "no verdict"
    return AttentionVerdict(float(np.mean(trained)), learned, vs_chance, label, reason)
