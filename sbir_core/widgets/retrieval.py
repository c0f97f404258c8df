"""Retrieval while the user draws (chapter 07): render, embed and rank after every stroke.

The sketch is rendered exactly as the training data was (:class:`sbir_core.data.StrokeCanvas` equals
``render_sketches``; uint8 as ``SplitTensors`` stores it; the centre view of ``distance_matrix``), so a drawn sketch
meets the model as a test sketch would. The on-the-fly idea of Bhunia et al. (CVPR 2020): a ranking after every
stroke, the target's rank over strokes the measure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sbir_core.config import RunConfig
from sbir_core.data.render import StrokeCanvas
from sbir_core.data.sketch import Sketch
from sbir_core.data.views import eval_views
from sbir_core.errors import DataError
from sbir_core.models.embedding import SBIRModel, photo_input, sketch_input, split_final_layer
from sbir_core.train import SplitTensors, embed

Strokes = Sequence[Sequence[Sequence[float]]]  # strokes of [x, y] or [x, y, t] points on the 256 frame


@dataclass(frozen=True)
class Ranking:
    """The gallery ranked for one state of the sketch."""

    order: np.ndarray  # gallery indices, best match first
    distances: np.ndarray  # (m,) distance of each gallery photo, by the loss's ``pairwise``
    target_rank: int | None  # 1-based rank of the target photo, when the retriever has one
    n_strokes: int
    ms: float  # wall time of render + embed + rank


def check_strokes(strokes: Strokes, source: str = "strokes") -> list[np.ndarray]:
    """The strokes as ``(n_i, 2)`` float64 arrays; a one-line :class:`DataError` naming ``source`` otherwise."""
    out = []
    for i, stroke in enumerate(strokes):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"stroke {i} is not a list of numeric points ({error})", source) from None
        if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] not in (2, 3):
            raise DataError(f"stroke {i} must be a non-empty list of [x, y] or [x, y, t] points, got shape "
                            f"{points.shape}", source)
        if not np.isfinite(points).all():
            raise DataError(f"stroke {i} has NaN or infinite coordinates", source)
        out.append(points[:, :2])
    return out


class Retriever:
    """Ranks a gallery for a sketch that grows stroke by stroke.

    The gallery is embedded once; each call to :meth:`rank` renders only the strokes added since the last call
    (:class:`StrokeCanvas`), embeds the sketch and ranks by the loss's distance. ``target`` (a gallery index) is the
    photo being drawn, whose rank is reported. ``policy``, the on-the-fly model of chapter 05 (a trained
    ``sbir_core.rl.GaussianPolicy``), replaces the sketch branch's final layer with its mean action, L2-normalised,
    as ``sbir_core.rl`` ranks.
    """

    def __init__(self, model: SBIRModel, loss: nn.Module, photos: torch.Tensor, data_size: int, input_size: int,
                 target: int | None = None, names: Sequence[str] | None = None, batch_size: int = 64,
                 policy: nn.Module | None = None) -> None:
        if photos.ndim != 4 or photos.shape[1:] != (data_size, data_size, 3) or photos.dtype != torch.uint8:
            raise ValueError(f"photos must be uint8 (m, {data_size}, {data_size}, 3), got {photos.dtype} "
                             f"{tuple(photos.shape)}")
        if target is not None and not 0 <= target < len(photos):
            raise ValueError(f"target {target} is not a gallery index (0-{len(photos) - 1})")
        self.model, self.loss = model.eval(), loss
        self.photos, self.data_size, self.input_size = photos, data_size, input_size
        self.target, self.names = target, list(names) if names is not None else None
        self.policy = None if policy is None else policy.eval()
        self._features = split_final_layer(model.sketch)[0] if policy is not None else None
        self.device = next(model.parameters()).device
        self.view = eval_views(data_size, input_size, False)[0]
        with torch.no_grad():
            self.gallery = embed(model.embed_photo, photos, photo_input, input_size, self.view, self.device, batch_size)
        self._canvas, self._drawn = StrokeCanvas(), []

    @classmethod
    def from_run(cls, result: object, cfg: RunConfig, gallery: SplitTensors, target: int | None = None,
                 policy: nn.Module | None = None) -> "Retriever":
        """A trained run (``fit`` / ``cached_fit``) and a split held in memory (its photos are the gallery)."""
        return cls(result.model, result.loss, gallery.photos, cfg.train.data_size, cfg.model.input_size, target,
                   gallery.photo_names, cfg.eval.batch_size, policy)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network inputs ``(B, 3, S, S)`` (``sketch_input``) → sketch embeddings: the model's, or the policy's."""
        if self.policy is None:
            return self.model.embed_sketch(inputs)
        return F.normalize(self.policy(self._features(inputs)), dim=-1)

    def __len__(self) -> int:
        return len(self.photos)

    def raster(self, strokes: Strokes | Sketch) -> torch.Tensor:
        """``(data_size, data_size)`` uint8 raster of the sketch, ink = 255, as ``SplitTensors`` stores it."""
        parts = strokes.strokes() if isinstance(strokes, Sketch) else check_strokes(strokes)
        if len(parts) < len(self._drawn) or any(not np.array_equal(a, b) for a, b in zip(parts, self._drawn)):
            self._canvas, self._drawn = StrokeCanvas(), []  # not a continuation (undo, clear, another sketch)
        for stroke in parts[len(self._drawn):]:
            self._canvas.add_stroke(stroke)
            self._drawn.append(stroke)
        return torch.from_numpy(np.round(self._canvas.raster(self.data_size).numpy() * 255).astype(np.uint8))

    @torch.no_grad()
    def embed_raster(self, raster: torch.Tensor) -> torch.Tensor:
        """The sketch embedding ``(D,)`` of a ``(data_size, data_size)`` uint8 raster (centre view)."""
        return embed(self.encode, raster[None], sketch_input, self.input_size, self.view, self.device)[0]

    @torch.no_grad()
    def rank(self, strokes: Strokes | Sketch) -> Ranking:
        """Render (the new strokes only), embed and rank; an empty sketch ranks nothing."""
        start = time.perf_counter()
        raster = self.raster(strokes)
        if not self._drawn:
            raise DataError("the sketch is empty: draw a stroke first", "strokes")
        distances = self.loss.pairwise(self.embed_raster(raster)[None], self.gallery)[0].float().cpu().numpy()
        order = np.argsort(distances, kind="stable")
        target = None if self.target is None else int(np.flatnonzero(order == self.target)[0]) + 1
        return Ranking(order, distances, target, len(self._drawn), 1000 * (time.perf_counter() - start))


__all__ = ["Ranking", "Retriever", "check_strokes"]
