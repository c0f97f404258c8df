"""The synthetic FG-SBIR benchmark: part-based object models, photos with a domain gap, and styled drawers.

``ensure_synthetic(profile="book", seed=0)`` returns the folder holding one QMUL-V2-layout dataset per category
(load it with :func:`sbir_core.data.load_collection` or one category with :func:`sbir_core.data.load_dataset`).
"""
from sbir_core.data.synthetic.categories import CATEGORIES
from sbir_core.data.synthetic.drawer import DRAWERS, DrawerStyle
from sbir_core.data.synthetic.writer import PROFILES, ensure_synthetic, generate

__all__ = ["CATEGORIES", "DRAWERS", "DrawerStyle", "PROFILES", "ensure_synthetic", "generate"]
