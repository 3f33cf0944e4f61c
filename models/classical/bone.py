"""Bone: dense voxels with the marrow they enclose, without specks."""
from __future__ import annotations

import numpy as np

from . import hu
from .morphology import drop_small, fill_holes_per_slice

# Enclosed holes up to this area (cm²) are marrow; larger enclosures (the spinal canal is
# about 2 cm² but is kept out by its low HU below, the pelvic ring encloses organs) are not.
MAX_MARROW_HOLE_CM2 = 12.0
# A hole is marrow when its mean HU is above this: trabecular bone in partial volume; the spinal
# canal (cord and CSF, 0..40 HU) and the organs a ring of bone encloses stay out.
MIN_MARROW_MEAN_HU = 100.0
# Dense specks smaller than this (mL) are vessel calcifications, contrast or noise, not bone.
MIN_BONE_ML = 0.5


def bone_mask(ras_hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    dense = (ras_hu > hu.BONE_MIN) & body
    holes = fill_holes_per_slice(dense) & ~dense
    marrow = _marrow(holes, ras_hu, float(spacing[0] * spacing[1]) / 100.0)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return drop_small(dense | marrow, int(np.ceil(MIN_BONE_ML / voxel_ml)))


def _marrow(holes: np.ndarray, ras_hu: np.ndarray, pixel_cm2: float) -> np.ndarray:
    """The enclosed holes that are marrow: small and dense enough (per axial slice)."""
    from scipy import ndimage as ndi

    from .morphology import IN_PLANE

    labels, count = ndi.label(holes, structure=IN_PLANE)
    if count == 0:
        return holes
    index = np.arange(1, count + 1)
    areas = ndi.sum_labels(holes, labels, index) * pixel_cm2
    means = ndi.mean(ras_hu, labels, index)
    keep = np.concatenate([[False], (areas <= MAX_MARROW_HOLE_CM2) & (means >= MIN_MARROW_MEAN_HU)])
    return keep[labels]
