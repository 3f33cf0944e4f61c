"""Box prompts as users write them: `x0,y0,x1,y1@z` on a 3D scan, `x0,y0,x1,y1` on a 2D image.

The CLI (`prosector segment IMAGE "liver" --box ...`) and the other faces parse with `parse_box`.

Units
- "voxel" (default): indices on the scan's RAS view, counted from 0, both corners inclusive:
  x along the axis pointing to the patient's Right, y Anterior, z Superior (z picks the
  slice: axial for the usual CT). For a NIfTI stored RAS, as most are, these are the file's
  own voxel indices (what nibabel's `get_fdata()[x, y, z]` shows); for an LPS file (DICOM,
  many MR) they are not: give mm there, or count on the RAS view.
- "mm": world RAS+ millimetres (nibabel's convention, +x toward the patient's Right,
  +y Anterior, +z Superior): x0,y0 and x1,y1 are opposite corners, z the slice's position.
  Each is mapped to the nearest voxel of the RAS view.
- 2D images (PNG/JPEG): pixel indices, x = column, y = row, counted from the top-left; `@z`
  may be left out (or given as @0). Units "mm" means the same as "voxel" there: a picture has
  no world geometry.
A trailing unit in the text overrides the `units` argument: `-60,-20,20,40@-100mm` is in mm,
`10,20,40,60@55vox` in voxels. Corners may come in either order. A box reaching outside the image is an InputError that
states the image's extent in the units used.
"""
from __future__ import annotations

import re

import numpy as np

from prosector.errors import InputError
from prosector.geometry import OrientationView
from prosector.scan import Scan

from .slices import Box

UNITS = ("voxel", "mm")
_NUMBER = r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
_BOX = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}(?:@{_NUMBER})?(mm|vox|voxel)?\s*$", re.IGNORECASE)
# A mm corner may fall up to half a voxel beyond the outermost voxel centre and still be inside.
_HALF_VOXEL = 0.5


def parse_box(text: str, scan: Scan, units: str = "voxel") -> tuple[Box, int]:
    """`text` as ((x0, y0, x1, y1), z) in voxel indices of the scan's RAS view (see module doc)."""
    if units not in UNITS:
        raise InputError(f"box units must be one of {', '.join(UNITS)}, not {units!r}")
    match = _BOX.match(str(text))
    if not match:
        example = "x0,y0,x1,y1" if scan.is_2d else "x0,y0,x1,y1@z"
        raise InputError(f"box {text!r} is not of the form {example} (numbers; voxel indices or, with mm units, world RAS+ mm)")
    x0, y0, x1, y1 = (float(v) for v in match.groups()[:4])
    z = None if match.group(5) is None else float(match.group(5))
    if match.group(6):
        units = "mm" if match.group(6).lower() == "mm" else "voxel"
    view = OrientationView.of(scan.grid, "RAS")
    shape = view.target.shape
    if scan.is_2d:
        if z not in (None, 0.0):
            raise InputError(f"box {text!r}: a 2D image has one slice, so @z must be left out (or @0)")
        z = 0.0
        units = "voxel"  # a picture has only pixel indices
    elif z is None:
        raise InputError(f"box {text!r} names no slice: on a 3D scan write x0,y0,x1,y1@z")
    if units == "voxel":
        return _voxel_box(text, (x0, y0, x1, y1), z, shape, scan.is_2d)
    return _mm_box(text, (x0, y0, x1, y1), z, view)


def _voxel_box(text: str, corners, z: float, shape, is_2d: bool) -> tuple[Box, int]:
    values = (*corners, z)
    if any(v != round(v) for v in values):
        raise InputError(f"box {text!r}: voxel indices must be whole numbers (use mm units for millimetres)")
    x0, y0, x1, y1, zi = (int(round(v)) for v in values)
    box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    if box[0] < 0 or box[1] < 0 or box[2] >= shape[0] or box[3] >= shape[1] or not 0 <= zi < shape[2]:
        raise InputError(f"box {text!r} lies outside the image, whose extent is {_voxel_extent(shape, is_2d)}")
    return box, zi


def _mm_box(text: str, corners, z: float, view: OrientationView) -> tuple[Box, int]:
    x0, y0, x1, y1 = corners
    shape = view.target.shape
    points = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1)], dtype=float)
    ijk = view.target.voxel(points)
    low, high = ijk.min(axis=0), ijk.max(axis=0)
    beyond = np.any(low < -_HALF_VOXEL) or np.any(high > np.array(shape) - 1 + _HALF_VOXEL)
    if beyond:
        raise InputError(f"box {text!r} (mm) lies outside the image, whose extent is {_mm_extent(view)}")
    lo = np.clip(np.round(low), 0, np.array(shape) - 1).astype(int)
    hi = np.clip(np.round(high), 0, np.array(shape) - 1).astype(int)
    zi = int(np.clip(np.round(ijk[:, 2].mean()), 0, shape[2] - 1))
    return (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])), zi


def _voxel_extent(shape, is_2d: bool) -> str:
    if is_2d:
        return f"x (column) 0..{shape[0] - 1}, y (row) 0..{shape[1] - 1} pixels"
    return f"x 0..{shape[0] - 1}, y 0..{shape[1] - 1}, z 0..{shape[2] - 1} (voxel indices of the RAS view)"


def _mm_extent(view: OrientationView) -> str:
    corners = view.target.corners_world()
    low, high = corners.min(axis=0), corners.max(axis=0)
    return ", ".join(f"{axis} {lo:.1f}..{hi:.1f}" for axis, lo, hi in zip("xyz", low, high)) + " mm (world RAS+)"
