"""Widgets: the drawing pad and the retrieval it drives (chapter 07).

``SketchPad`` (an anywidget) draws and ranks in a notebook; ``Retriever`` renders, embeds and ranks a sketch stroke
by stroke; ``export_book_pad`` writes the ONNX encoder and gallery that the published book's pad runs in the browser.
"""
from sbir_core.widgets.export import export_book_pad
from sbir_core.widgets.pad import SketchPad, png_data_uri
from sbir_core.widgets.retrieval import Ranking, Retriever

__all__ = ["Ranking", "Retriever", "SketchPad", "export_book_pad", "png_data_uri"]
