"""SAT (text-prompted universal 3D segmentation), reimplemented: config, model, text tower, loaders.

Importing this package (and the engine) does not import torch: `prosector engines` can list SAT
on a machine without it. The model modules import torch when they are used.
"""
from .engine import SatEngine

__all__ = ["SatEngine"]
