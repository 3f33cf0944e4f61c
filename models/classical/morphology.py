"""Slice-wise morphology on a RAS view (axis 2 is superior), with sizes in millimetres.

Dilation and erosion use a Euclidean disk. Small disks run as structuring elements; large ones
go through each axial slice's exact distance transform, whose cost does not grow with the radius
(an 18 mm closing at 0.7 mm voxels would otherwise sweep a 51x51 element over every voxel).
Both give the same result.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# In-plane 4-connectivity as a 3D structure: operations act on each axial slice on its own.
IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE[:, :, 1] = ndi.generate_binary_structure(2, 1)


def axial_slices(array: np.ndarray) -> np.ndarray:
    """A copy with the axial slices first and each one contiguous: per-slice loops read a
    strided slice of the RAS array several times slower."""
    return np.ascontiguousarray(np.moveaxis(array, 2, 0))


def from_axial_slices(array: np.ndarray) -> np.ndarray:
    """The inverse of `axial_slices`."""
    return np.ascontiguousarray(np.moveaxis(array, 0, 2))


def depth_mm(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Per axial slice, each mask voxel's in-plane distance (mm) to the nearest voxel outside it.

    A slice that is all mask has no outside in view: its depth is infinite.
    """
    planes = axial_slices(mask)
    out = np.zeros(planes.shape, dtype=np.float32)
    sampling = (float(spacing[0]), float(spacing[1]))
    for k, plane in enumerate(planes):
        if plane.all():
            out[k] = np.inf
        elif plane.any():
            out[k] = ndi.distance_transform_edt(plane, sampling=sampling)
    return from_axial_slices(out)


# Disks up to this radius (voxels) run as structuring elements: faster than a transform per slice.
MAX_ELEMENT_RADIUS_VOXELS = 3


def _small_disk(radius_mm: float, spacing: np.ndarray) -> np.ndarray | None:
    """The in-plane disk as a 3D structuring element, or None when it is too large for one."""
    reach = [int(np.floor(radius_mm / float(s))) for s in spacing[:2]]
    if max(reach) > MAX_ELEMENT_RADIUS_VOXELS:
        return None
    i, j = np.ogrid[-reach[0]:reach[0] + 1, -reach[1]:reach[1] + 1]
    flat = (i * float(spacing[0])) ** 2 + (j * float(spacing[1])) ** 2 <= radius_mm ** 2
    return flat[:, :, None]


def dilate(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """In-plane dilation by a Euclidean disk of `radius_mm`."""
    element = _small_disk(radius_mm, spacing)
    if element is not None:
        return ndi.binary_dilation(mask, structure=element)
    return depth_mm(~mask, spacing) <= radius_mm


def erode(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """In-plane erosion by a Euclidean disk of `radius_mm` (the image edge does not erode)."""
    element = _small_disk(radius_mm, spacing)
    if element is not None:
        return ndi.binary_erosion(mask, structure=element, border_value=1)
    return depth_mm(mask, spacing) > radius_mm


def within(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Voxels within `radius_mm` of the mask in-plane, then as far through-plane: a short cylinder
    (cheaper than a ball, and at 3 mm voxels it reaches the same 18 neighbours but the corners)."""
    near = dilate(mask, radius_mm, spacing)
    reach = int(np.floor(radius_mm / float(spacing[2])))
    if reach:
        near = ndi.maximum_filter1d(near.view(np.uint8), size=2 * reach + 1, axis=2).view(bool)
    return near


def opening(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Removes what is thinner than twice `radius_mm` in-plane."""
    return dilate(erode(mask, radius_mm, spacing), radius_mm, spacing)


def closing(mask: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Bridges in-plane gaps narrower than twice `radius_mm`."""
    return erode(dilate(mask, radius_mm, spacing), radius_mm, spacing)


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill what each axial slice encloses (lungs, bowel, marrow), never across slices.

    The same as binary_fill_holes with in-plane connectivity, by one labelling of the background
    instead of an iterated dilation (several times faster on clinical-size CT).
    """
    background, count = ndi.label(~mask, structure=IN_PLANE)
    edges = np.concatenate([background[0].ravel(), background[-1].ravel(),
                            background[:, 0].ravel(), background[:, -1].ravel()])
    reaches_edge = np.zeros(count + 1, dtype=bool)
    reaches_edge[edges] = True
    reaches_edge[0] = False
    return ~reaches_edge[background]


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
