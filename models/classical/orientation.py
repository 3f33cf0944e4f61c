"""A reversible RAS view of a scan's voxels: segment in world terms, return on the scan's grid."""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

_RAS = nib.orientations.axcodes2ornt(("R", "A", "S"))


@dataclass(frozen=True)
class RasView:
    """How the scan's axes map onto the nearest RAS axes (an axis permutation and flips only)."""

    ornt: np.ndarray            # nibabel orientation of the scan's axes relative to RAS
    shape: tuple[int, int, int]  # the scan's own shape
    affine: np.ndarray          # voxel -> world of the RAS view (exact: same world points)

    @classmethod
    def of(cls, affine: np.ndarray, shape: tuple[int, ...]) -> "RasView":
        shape3 = tuple(int(s) for s in shape[:3])
        ornt = nib.orientations.io_orientation(affine)
        ras_affine = np.asarray(affine, float) @ nib.orientations.inv_ornt_aff(ornt, shape3)
        return cls(ornt=ornt, shape=shape3, affine=ras_affine)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along the RAS view's axes (mm)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    def to_ras(self, array: np.ndarray) -> np.ndarray:
        return nib.orientations.apply_orientation(array, self.ornt)

    def from_ras(self, array: np.ndarray) -> np.ndarray:
        """The exact inverse of `to_ras`: back onto the scan's own axis order."""
        back = nib.orientations.ornt_transform(_RAS, self.ornt)
        out = nib.orientations.apply_orientation(array, back)
        assert out.shape[:3] == self.shape, (out.shape, self.shape)
        return out

    def world(self, axis: int, shape: tuple[int, int, int]) -> np.ndarray:
        """World coordinate `axis` (0 x, 1 y, 2 z; mm, RAS+) of every voxel of a RAS-view array."""
        i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
        a = self.affine.astype(np.float32)
        return (a[axis, 0] * i[:, None, None] + a[axis, 1] * j[None, :, None]
                + a[axis, 2] * k[None, None, :] + a[axis, 3])

    def world_x(self, shape: tuple[int, int, int]) -> np.ndarray:
        """World x (mm, + toward the patient's right) of every voxel of a RAS-view array."""
        return self.world(0, shape)
