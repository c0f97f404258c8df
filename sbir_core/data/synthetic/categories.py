"""The registry of synthetic categories: attribute schema + part-model builder for each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sbir_core.data.synthetic import chair, objects, shoe
from sbir_core.data.synthetic.geometry import Part, Shape


@dataclass(frozen=True)
class Category:
    name: str
    attributes: dict[str, list[str]]
    build: Callable[[dict[str, str], np.random.Generator], list[Part]]  # y-up, ground at 0


CATEGORIES: dict[str, Category] = {
    "shoe": Category("shoe", shoe.ATTRIBUTES, shoe.build),
    "chair": Category("chair", chair.ATTRIBUTES, chair.build),
    **{name: Category(name, attrs, build) for name, (attrs, build) in objects.MODELS.items()},
}


def sample_attributes(category: str, rng: np.random.Generator) -> dict[str, str]:
    """Each attribute uniformly and independently."""
    return {k: v[int(rng.integers(len(v)))] for k, v in CATEGORIES[category].attributes.items()}


def make_shape(category: str, attributes: dict[str, str], seed: int) -> Shape:
    """Build an instance (image orientation, y down). The same ``seed`` gives the same continuous proportions, so a
    sketch of a mis-remembered attribute changes that part and (mostly) nothing else."""
    parts = CATEGORIES[category].build(attributes, np.random.default_rng(seed))
    flip = np.diag([1.0, -1.0])
    return Shape(category, parts, dict(attributes)).transformed(flip, np.zeros(2))
