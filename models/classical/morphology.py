"""Slice-wise morphology on a RAS view (axis 2 is superior), with sizes in millimetres."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# In-plane 4-connectivity as a 3D structure: operations act on each axial slice on its own.
IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE[:, :, 1] = ndi.generate_binary_structure(2, 1)


def disk(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """An in-plane elliptical disk of `radius_mm` for voxels of `spacing`; at least a 3x3 cross."""
    ri, rj = (max(1, int(round(radius_mm / float(s)))) for s in spacing[:2])
    i, j = np.ogrid[-ri:ri + 1, -rj:rj + 1]
    flat = (i * float(spacing[0])) ** 2 + (j * float(spacing[1])) ** 2 <= radius_mm ** 2 + 1e-6
    flat[ri, :] |= np.abs(np.arange(-rj, rj + 1)) <= 1
    flat[:, rj] |= np.abs(np.arange(-ri, ri + 1)) <= 1
    return flat[:, :, None]


def voxels(length_mm: float, size_mm: float) -> int:
    """How many voxels of `size_mm` span `length_mm` (at least one)."""
    return max(1, int(round(length_mm / size_mm)))


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill what each axial slice encloses (lungs, bowel, marrow), never across slices."""
    return ndi.binary_fill_holes(mask, structure=IN_PLANE)


def components_by_size(mask: np.ndarray, structure: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the connected components and each one's voxel count (index 0 is label 1)."""
    labels, count = ndi.label(mask, structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return labels, sizes


def drop_small(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """The mask without 3D components smaller than `min_voxels`."""
    labels, sizes = components_by_size(mask)
    keep = np.concatenate([[False], sizes >= min_voxels])
    return keep[labels]
