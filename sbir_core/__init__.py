"""sbir_core: fine-grained sketch-based image retrieval (FG-SBIR) in small, readable PyTorch.

Implements the models, losses, triplet trainer and metrics of Yu et al. (CVPR 2016) and Song et al. (ICCV 2017) /
Yu et al. (IJCV 2020), the data formats and metrics that Bhunia et al. (CVPR 2020, ECCV 2022) build on, on-the-fly
retrieval by reinforcement learning (CVPR 2020, ``sbir_core.rl``), adaptation by meta-learning (ECCV 2022,
``sbir_core.meta``), a run cache and the chapters' records.
"""
from sbir_core.runtime import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
