"""Slice-by-slice propagation of a 2D box segmentation through a volume.

From the seed slice, each neighbour is prompted with the previous slice's mask bounding box
widened by a margin. A box around an organ also holds its neighbours, and LiteMedSAM often
paints some of them too (the liver's box holds the right kidney); once painted, they widen
the next box and the walk drifts into them. Two rules keep it on the structure:
- growth limit: an outline moves only so far between neighbouring slices, so a slice's mask
  is cut to the previous one dilated by a few voxels (see `growth_limit`);
- intensity gate: voxels far from the seed's intensities (mean +- 2.5 SD of the seed mask on
  the scan's own values) are dropped, thin bridges opened, and noise pits refilled.
On example_ct the liver's walk ran 22 slices past the liver's end into the kidney without
them (lower-half Dice 0.38), and stopped 2 slices short of the tip with them (whole Dice 0.93).
The walk continues in both directions until the mask vanishes, loses contact with the
previous slice, collapses (area below a fraction of the seed's), or the scan ends. The
segmenter is passed in, so the rules are testable without the network.
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
    min_score: float = 0.0         # stop once the model's own IoU estimate falls below this (off: it
                                   # stayed 0.8-0.9 on slices that had drifted into the kidney)
    max_growth: int | None = None  # voxels an outline may move per slice; None: from the spacing
    intensity_sds: float = 2.5     # gate width in seed standard deviations; 0 turns the gate off


def growth_limit(spacing: tuple[float, float, float]) -> int:
    """Voxels an outline may move in-plane between slices: a surface at 45 degrees moves one slice
    thickness; at least 2 voxels (3 let the liver's walk drift into the kidney on example_ct)."""
    return max(2, int(np.ceil(spacing[2] / min(spacing[0], spacing[1]) - 1e-6)))


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
              rules: PropagationRules = PropagationRules(), *, values: np.ndarray | None = None,
              spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Propagation:
    """Walk from `seed` (the mask on slice z0) through slices 0..depth-1 in both directions.

    `values` (the volume [x, y, z] the slices come from, in the scan's own units) enables the
    intensity gate; `spacing` (mm along x, y, z) sets the growth limit unless the rules fix it.
    """
    result = Propagation(slices={z0: seed})
    seed_area = int(seed.sum())
    if seed_area == 0:
        result.stopped = {"up": "seed slice empty", "down": "seed slice empty"}
        return result
    growth = rules.max_growth if rules.max_growth is not None else growth_limit(spacing)
    gate = None
    if values is not None and rules.intensity_sds > 0:
        seed_values = values[:, :, z0][seed].astype(np.float64)
        spread = rules.intensity_sds * max(float(seed_values.std()), 1e-6)
        gate = (float(seed_values.mean()) - spread, float(seed_values.mean()) + spread)
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
            if gate is not None:
                slice_values = values[:, :, z]
                gated = ndi.binary_opening(mask & (slice_values >= gate[0]) & (slice_values <= gate[1]))
                # Noise pits the gated mask; refill the pits (only where the segmenter had painted).
                mask = ndi.binary_fill_holes(gated) & mask
            mask &= ndi.binary_dilation(previous, iterations=growth)
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
