"""Data: vector sketches, rendering, the real dataset loaders and the synthetic benchmark.

>>> data = load_dataset(root)          # "qmul-v2" (also each synthetic category), "qmul-v1" or "sketchy"
>>> data.train.sketch_rasters(64)       # (n, 64, 64) float32, ink = 1
>>> data.test.photos(64)                # (m, 64, 64, 3) uint8, the gallery
"""
from sbir_core.data.load import detect_format, load_collection, load_dataset
from sbir_core.data.render import StrokeCanvas, progressive_rasters, render_sketches
from sbir_core.data.sketch import Sketch, stroke_statistics
from sbir_core.data.split import FGSBIRData, Split, edge_maps

__all__ = ["FGSBIRData", "Sketch", "Split", "StrokeCanvas", "detect_format", "edge_maps", "load_collection",
           "load_dataset", "progressive_rasters", "render_sketches", "stroke_statistics"]
