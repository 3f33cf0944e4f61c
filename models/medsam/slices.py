"""How a scan's slices become pictures for LiteMedSAM and how boxes and masks travel back.

Work happens on the scan's RAS view (prosector.geometry.OrientationView, exact both ways):
slice k is view[:, :, k], indexed [x, y] with x toward the patient's Right and y Anterior.
LiteMedSAM was trained on slices shown the radiological way (anterior at the top, the
patient's right on the picture's left); on this project's test slices, showing AMOS slices
upside down cost 0.07 mean Dice. So a 3D slice is shown that way: picture[row, col] =
slice[nx-1-col, ny-1-row]. A 2D image is already a picture: picture = data[:, :, 0].T, which
is the PNG's own [row, column] layout (the Scan stores PNGs as data[x=column, y=row, 0]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: inclusive indices along the slice's two axes


@dataclass(frozen=True)
class SliceLayout:
    """Maps one slice shape [nx, ny] to and from SAM's picture layout [row, col]."""

    nx: int
    ny: int
    radiological: bool  # True for 3D scans (rotate into the radiological view), False for 2D images

    def to_picture(self, slice2d: np.ndarray) -> np.ndarray:
        picture = np.asarray(slice2d).T
        return picture[::-1, ::-1] if self.radiological else picture

    def from_picture(self, picture: np.ndarray) -> np.ndarray:
        picture = np.asarray(picture)
        if self.radiological:
            picture = picture[::-1, ::-1]
        return np.ascontiguousarray(picture.T)

    def box_to_picture(self, box: Box) -> Box:
        """A slice box (x0, y0, x1, y1) as a picture box (col0, row0, col1, row1)."""
        x0, y0, x1, y1 = box
        if self.radiological:
            return (self.nx - 1 - x1, self.ny - 1 - y1, self.nx - 1 - x0, self.ny - 1 - y0)
        return (x0, y0, x1, y1)


def bounding_box(mask2d: np.ndarray) -> Box | None:
    """Inclusive (x0, y0, x1, y1) of a slice mask's voxels, or None when it is empty."""
    xs = np.flatnonzero(mask2d.any(axis=1))
    ys = np.flatnonzero(mask2d.any(axis=0))
    if xs.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])


def widen(box: Box, margin_fraction: float, min_margin: int, shape: tuple[int, int]) -> Box:
    """`box` grown on each side by a fraction of its size (at least `min_margin` voxels), clipped to `shape`."""
    x0, y0, x1, y1 = box
    mx = max(min_margin, int(round(margin_fraction * (x1 - x0 + 1))))
    my = max(min_margin, int(round(margin_fraction * (y1 - y0 + 1))))
    return (max(0, x0 - mx), max(0, y0 - my), min(shape[0] - 1, x1 + mx), min(shape[1] - 1, y1 + my))


def inside(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean slice that is True inside the inclusive box."""
    region = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = box
    region[x0 : x1 + 1, y0 : y1 + 1] = True
    return region
