"""Slice-by-slice propagation of a 2D box segmentation through a volume.

From the seed slice, each neighbour is prompted with the previous slice's mask bounding box
widened by a margin; the walk continues in both directions until the mask vanishes, breaks
away from the previous slice (no overlap: the box has found another structure), collapses
(area below a fraction of the seed's), or the scan ends. The segmenter is passed in, so the
walk's rules are testable without the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from .slices import Box, bounding_box, widen

# (slice index z, box) -> (bool slice [x, y], the model's estimate of the mask's IoU, 0..1)
SliceSegmenter = Callable[[int, Box], tuple[np.ndarray, float]]


@dataclass(frozen=True)
class PropagationRules:
    margin_fraction: float = 0.1   # box margin per side, as a fraction of the previous mask's extent
    min_margin: int = 2            # voxels: room for a small structure to grow between slices
    collapse_fraction: float = 0.1  # stop once a slice's area falls below this share of the seed's
    min_score: float = 0.0         # stop once the model's own IoU estimate for a slice falls below this


@dataclass
class Propagation:
    """The walk's result: a mask per reached slice and why each direction stopped."""

    slices: dict[int, np.ndarray] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # "up"/"down" -> reason

    @property
    def z_range(self) -> tuple[int, int] | None:
        return (min(self.slices), max(self.slices)) if self.slices else None


def connected_to(mask2d: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The parts of `mask2d` that touch `previous` (dilated by one voxel): a structure is continuous
    between neighbouring slices, so islands elsewhere in the box belong to something else."""
    labels, count = ndi.label(mask2d)
    if count == 0:
        return mask2d
    touching = np.unique(labels[ndi.binary_dilation(previous) & mask2d])
    return np.isin(labels, touching[touching > 0])


def propagate(segment: SliceSegmenter, seed: np.ndarray, z0: int, depth: int,
              rules: PropagationRules = PropagationRules()) -> Propagation:
    """Walk from `seed` (the mask on slice z0) through slices 0..depth-1 in both directions."""
    result = Propagation(slices={z0: seed})
    seed_area = int(seed.sum())
    if seed_area == 0:
        result.stopped = {"up": "seed slice empty", "down": "seed slice empty"}
        return result
    for direction, step in (("up", 1), ("down", -1)):
        previous, z = seed, z0 + step
        while True:
            if not 0 <= z < depth:
                result.stopped[direction] = f"reached the scan's end at slice {z - step}"
                break
            box = widen(bounding_box(previous), rules.margin_fraction, rules.min_margin, seed.shape)
            mask, score = segment(z, box)
            if not mask.any():
                result.stopped[direction] = f"mask vanished at slice {z}"
                break
            mask = connected_to(mask, previous)
            if not mask.any():
                result.stopped[direction] = f"mask lost contact with slice {z - step} at slice {z}"
                break
            if mask.sum() < rules.collapse_fraction * seed_area:
                result.stopped[direction] = f"mask collapsed at slice {z} ({int(mask.sum())} of the seed's {seed_area} voxels)"
                break
            if score < rules.min_score:
                result.stopped[direction] = f"mask doubtful at slice {z} (estimated IoU {score:.2f})"
                break
            result.slices[z] = mask
            previous, z = mask, z + step
    return result
