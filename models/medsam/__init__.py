"""The `medsam` engine: LiteMedSAM box prompts on 2D images and slice-by-slice through volumes.

Modules: predictor (the network on one picture), intensity (0-255 display scale), slices
(picture layout, boxes), prompt (box text -> voxel box), propagate (the slice walk), engine.
Torch loads only when a segmentation runs, so importing this package stays cheap.
"""
from .engine import MedSAMEngine
from .prompt import parse_box

__all__ = ["MedSAMEngine", "parse_box"]
