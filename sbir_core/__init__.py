"""sbir_core: fine-grained sketch-based image retrieval (FG-SBIR) in small, readable PyTorch.

Implements the models, losses, trainers and metrics of
Yu et al. (CVPR 2016), Song et al. (ICCV 2017) / Yu et al. (IJCV 2020),
Bhunia et al. (CVPR 2020) and Bhunia et al. (ECCV 2022).
"""
from sbir_core.runtime import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
