"""The RAS view the classical engine works on, with world coordinates of its voxels.

The reorientation itself is prosector.geometry's OrientationView (exact both ways); this adds
what the segmenters ask of it: voxel sizes along the RAS axes and world coordinates of voxels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prosector.geometry import OrientationView
from prosector.scan import Grid


@dataclass(frozen=True)
class RasView:
    orientation: OrientationView

    @classmethod
    def of(cls, affine: np.ndarray, shape: tuple[int, ...]) -> "RasView":
        grid = Grid(tuple(int(s) for s in shape[:3]), np.asarray(affine, dtype=float))
        return cls(OrientationView.of(grid, "RAS"))

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world RAS+ mm of the RAS view: the same world points as the scan's grid."""
        return self.orientation.target.affine

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along the RAS view's axes (mm)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def to_ras(self, array: np.ndarray) -> np.ndarray:
        return self.orientation.forward(array)

    def from_ras(self, array: np.ndarray) -> np.ndarray:
        """The exact inverse of `to_ras`: back onto the scan's own axis order."""
        return self.orientation.inverse(array)

    def world_in(self, axis: int, box: tuple[slice, slice, slice]) -> np.ndarray:
        """World coordinate `axis` (mm) of every voxel in `box` (slices of a RAS-view array)."""
        i, j, k = (np.arange(b.start, b.stop, dtype=np.float32) for b in box)
        a = self.affine.astype(np.float32)
        return (a[axis, 0] * i[:, None, None] + a[axis, 1] * j[None, :, None]
                + a[axis, 2] * k[None, None, :] + a[axis, 3])

    def plane(self, axis: int, k: int, shape: tuple[int, ...]) -> np.ndarray:
        """World coordinate `axis` (mm) of every voxel of axial slice `k` of a RAS-view array."""
        i, j = (np.arange(n, dtype=np.float32) for n in shape[:2])
        a = self.affine.astype(np.float32)
        return a[axis, 0] * i[:, None] + a[axis, 1] * j[None, :] + (a[axis, 2] * k + a[axis, 3])
