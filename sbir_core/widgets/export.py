"""The drawing pad of the published book: the sketch encoder in ONNX and the gallery, for onnxruntime-web.

``export_book_pad(retriever, folder)`` writes ``encoder.onnx`` and ``gallery.json`` into ``folder`` (the book's
``book/generated/pad``, served as ``_static/pad``); ``static/sbir_pad_book.js`` draws, rasterises as
:class:`~sbir_core.data.StrokeCanvas` does, embeds with onnxruntime-web (wasm, one thread) and ranks as
:meth:`Retriever.rank` does.
"""
from __future__ import annotations

import base64
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sbir_core.data.sketch import CANVAS
from sbir_core.losses import TripletLoss
from sbir_core.models.embedding import sketch_input
from sbir_core.runtime import atomic_path
from sbir_core.widgets.pad import png_data_uri
from sbir_core.widgets.retrieval import Retriever

FORMAT = 1  # gallery.json's version; sbir_pad_book.js refuses others


class SketchEncoder(nn.Module):
    """The sketch branch from the uint8 centre crop: ``(1, S, S)`` float32 values 0-255 → ``(1, D)`` embedding."""

    def __init__(self, retriever: Retriever) -> None:
        super().__init__()
        self.retriever = retriever
        self.model, self.policy = retriever.model, retriever.policy  # registered: their weights are the graph's

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        return self.retriever.encode(sketch_input(crop / 255.0))


def export_encoder(retriever: Retriever, path: str | os.PathLike) -> Path:
    """``torch.onnx.export`` of :class:`SketchEncoder` (opset 17, one sketch at a time), written atomically."""
    path = Path(path)
    encoder = SketchEncoder(retriever).eval()
    example = torch.zeros(1, retriever.input_size, retriever.input_size, device=retriever.device)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(encoder, (example,), str(tmp), input_names=["crop"], output_names=["embedding"],
                          opset_version=17, dynamo=False)
    return path


def export_book_pad(retriever: Retriever, folder: str | os.PathLike, top_k: int = 5, thumbnail: int = 64) -> Path:
    """Write ``encoder.onnx`` and ``gallery.json`` (embeddings, thumbnails, the target) into ``folder``."""
    if not isinstance(retriever.loss, TripletLoss):
        raise ValueError(f"the book's pad ranks by Euclidean distance; {type(retriever.loss).__name__} is not "
                         "supported")
    if retriever.target is None:
        raise ValueError("the book's pad needs a retriever with a target photo")
    folder = Path(folder)
    export_encoder(retriever, folder / "encoder.onnx")
    photos = retriever.photos.numpy()
    gallery = retriever.gallery.float().cpu().numpy().astype("<f4")
    record = {
        "format": FORMAT, "canvas": CANVAS, "data_size": retriever.data_size, "input_size": retriever.input_size,
        "squared": bool(retriever.loss.squared), "top_k": top_k, "target": retriever.target,
        "names": retriever.names or [str(i) for i in range(len(photos))], "dim": int(gallery.shape[1]),
        "embeddings": base64.b64encode(np.ascontiguousarray(gallery).tobytes()).decode("ascii"),
        "thumbnails": [png_data_uri(p, thumbnail) for p in photos],
        "photo": png_data_uri(photos[retriever.target], 128),
    }
    with atomic_path(folder / "gallery.json") as tmp:
        tmp.write_text(json.dumps(record))
    for name in ("encoder.onnx", "gallery.json"):
        (folder / name).chmod(0o644)  # served to readers
    return folder


__all__ = ["SketchEncoder", "export_book_pad", "export_encoder"]
