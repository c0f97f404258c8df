"""``SketchPad``: draw with a mouse, pen or finger and watch the gallery re-ranked after every stroke (chapter 07).

An anywidget (Jupyter, JupyterLab, Notebook 7, VS Code, Colab): its front end is ``static/sbir_pad.js``, the same
module the published book runs with onnxruntime-web. The browser draws and timestamps the strokes; they reach
Python after each stroke, where a :class:`~sbir_core.widgets.retrieval.Retriever` ranks the gallery.
"""
from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from typing import Sequence

import anywidget
import numpy as np
import traitlets
from PIL import Image

from sbir_core.data.sketch import Sketch
from sbir_core.errors import DataError
from sbir_core.widgets.retrieval import Ranking, Retriever, check_strokes

STATIC = Path(__file__).parent / "static"


def png_data_uri(image: np.ndarray, size: int | None = None) -> str:
    """A uint8 ``(H, W, 3)`` or ``(H, W)`` image as a ``data:image/png`` URI, resized to ``size`` when given."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if size is not None:
        picture = picture.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class SketchPad(anywidget.AnyWidget):
    """A square drawing pad; with a ``retriever``, the top matches and the target's rank after every stroke.

    ``strokes`` holds the drawing as lists of ``[x, y, t]`` points: x, y on the QMUL 256 x 256 frame, t in ms
    since the first point. Updates are throttled: strokes that arrive while a ranking is due are ranked once, at
    most every ``min_interval`` seconds; drawing happens in the browser and never waits for the kernel.
    """

    _esm = STATIC / "sbir_pad.js"
    _clock = staticmethod(time.monotonic)  # the throttle's clock
    strokes = traitlets.List([]).tag(sync=True)
    results = traitlets.Dict({}).tag(sync=True)
    photo = traitlets.Unicode("").tag(sync=True)  # the reference photo beside the pad (a data URI)
    size = traitlets.Int(256).tag(sync=True)  # the pad's side in CSS pixels

    def __init__(self, retriever: Retriever | None = None, photo: np.ndarray | None = None, top_k: int = 5,
                 min_interval: float = 0.05, thumbnail: int = 64, **kwargs: object) -> None:
        if photo is None and retriever is not None and retriever.target is not None:
            photo = retriever.photos[retriever.target].numpy()
        super().__init__(photo=png_data_uri(photo, 128) if photo is not None else "", **kwargs)
        self.retriever, self.top_k, self.min_interval, self.thumbnail = retriever, top_k, min_interval, thumbnail
        self.history: list[int] = []  # the target's rank after stroke 1, 2, ...
        self.last: Ranking | None = None
        self._due, self._last_time = False, -np.inf
        self._thumbnails: tuple[Retriever | None, dict[int, str]] = (retriever, {})  # encoded once per photo
        self.observe(self._on_strokes, names="strokes")

    # --- the sketch ------------------------------------------------------------------------------------------------
    @property
    def sketch(self) -> Sketch:
        """The drawing as a :class:`~sbir_core.data.Sketch` on the QMUL frame."""
        parts = check_strokes(self.strokes, "SketchPad.strokes")
        if not parts:
            raise DataError("the pad is empty: draw a stroke first", "SketchPad.strokes")
        return Sketch.from_strokes(parts)

    @property
    def times(self) -> np.ndarray:
        """Per-point timestamps in ms, in the order of :meth:`to_qmul`'s rows (NaN where a point has none)."""
        return np.array([p[2] if len(p) > 2 else np.nan for s in self.strokes for p in s], dtype=np.float64)

    def to_qmul(self) -> np.ndarray:
        """The drawing in the QMUL ``(N, 3)`` layout: absolute x, y and the pen state (1 on a stroke's last point)."""
        return self.sketch.points.copy()

    def load(self, sketch: Sketch | np.ndarray, times: Sequence[float] | None = None) -> None:
        """Show a stored sketch (a :class:`Sketch` or a QMUL ``(N, 3)`` array), with its per-point times if known."""
        sketch = sketch if isinstance(sketch, Sketch) else Sketch.from_array(sketch, "SketchPad.load")
        t = np.zeros(sketch.n_points) if times is None else np.asarray(times, dtype=np.float64)
        if t.shape != (sketch.n_points,):
            raise DataError(f"times must hold one value per point ({sketch.n_points}), got shape {t.shape}",
                            "SketchPad.load")
        ends = np.flatnonzero(sketch.points[:, 2]) + 1
        rows = np.column_stack([sketch.points[:, :2], t])
        self.strokes = [part.tolist() for part in np.split(rows, ends)[:-1]]

    def replay(self, sketch: Sketch, times: Sequence[float] | None = None) -> list[Ranking]:
        """Draw a stored sketch stroke by stroke, ranking after each: what the pad shows when someone draws it."""
        self.load(sketch, times)
        strokes, rankings = self.strokes, []
        self.unobserve(self._on_strokes, names="strokes")
        try:
            for k in range(1, len(strokes) + 1):
                self.strokes = strokes[:k]
                rankings.append(self.refresh())
        finally:
            self.observe(self._on_strokes, names="strokes")
        return rankings

    # --- retrieval --------------------------------------------------------------------------------------------------
    def refresh(self) -> Ranking | None:
        """Rank the gallery for the current strokes now and show the result; None without a retriever or strokes."""
        self._due = False
        self._last_time = self._clock()
        if self.retriever is None:
            return None
        if not self.strokes:
            self.history, self.last, self.results = [], None, {}
            return None
        ranking = self.retriever.rank(self.strokes)
        self.history = self.history[:ranking.n_strokes - 1] + [ranking.target_rank or 0]
        self.last = ranking
        photos = self.retriever.photos
        if self._thumbnails[0] is not self.retriever:  # another retriever, another gallery
            self._thumbnails = (self.retriever, {})
        cache = self._thumbnails[1]
        for i in ranking.order[:self.top_k].tolist():
            if i not in cache:
                cache[i] = png_data_uri(photos[i].numpy(), self.thumbnail)
        top = [{"src": cache[i], "match": bool(i == self.retriever.target),
                "label": self.retriever.names[i] if self.retriever.names else str(i)}
               for i in ranking.order[:self.top_k].tolist()]
        self.results = {"n_strokes": ranking.n_strokes, "rank": ranking.target_rank or 0, "gallery_size": len(photos),
                        "history": list(self.history), "top": top, "ms": ranking.ms}
        return ranking

    def _on_strokes(self, change: dict) -> None:
        """Throttle: rank at once when the last ranking is older than ``min_interval``, else once when it is due."""
        if self._due or self.retriever is None:
            return
        wait = self.min_interval - (self._clock() - self._last_time)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script or a test): rank now
            loop = None
        if loop is None or wait <= 0:
            self._refresh_shown()
        else:
            self._due = True
            loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        if self._due:
            self._refresh_shown()

    def _refresh_shown(self) -> None:
        """:meth:`refresh` for strokes from the browser: bad ones are shown on the pad, not raised in the kernel."""
        try:
            self.refresh()
        except DataError as error:
            self.results = {"error": str(error)}


__all__ = ["SketchPad", "png_data_uri"]
