"""Bone: dense cores grown into the trabecular bone around them, with enclosed marrow filled in."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import hu
from .morphology import IN_PLANE, drop_small, fill_holes_per_slice

# Enclosed holes up to this area (cm²) are marrow (a lumbar vertebral body is ~15 cm²); a
# ring of bone around more (the pelvic inlet holds organs) does not make them bone.
MAX_MARROW_HOLE_CM2 = 25.0
# Dense specks smaller than this (mL) are vessel calcifications, contrast or noise, not bone.
MIN_BONE_ML = 0.5


def bone_mask(ras_hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Bool mask of bone on the RAS view: cortex, trabecular bone and enclosed marrow."""
    # Hysteresis: trabecular bone at 3 mm averages 100-200 HU, like nothing else unenhanced, but
    # only counts where it touches a core above BONE_MIN that no soft tissue reaches.
    candidate = (ras_hu > hu.BONE_TRABECULAR_MIN) & body
    labels, _ = ndi.label(candidate)
    cores = np.unique(labels[(ras_hu > hu.BONE_MIN) & body])
    bone = np.isin(labels, cores[cores > 0])
    holes = fill_holes_per_slice(bone) & ~bone
    pixel_cm2 = float(spacing[0] * spacing[1]) / 100.0
    bone |= _small_holes(holes, pixel_cm2)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return drop_small(bone, int(np.ceil(MIN_BONE_ML / voxel_ml)))


def _small_holes(holes: np.ndarray, pixel_cm2: float) -> np.ndarray:
    """Per axial slice, the enclosed holes small enough to be marrow."""
    labels, count = ndi.label(holes, structure=IN_PLANE)
    if count == 0:
        return holes
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:] * pixel_cm2
    keep = np.concatenate([[False], areas <= MAX_MARROW_HOLE_CM2])
    return keep[labels]
