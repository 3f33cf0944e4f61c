"""The Scan: voxels on their original grid, the affine to world RAS+ mm, modality, provenance."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

MODALITIES = ("ct", "mr", "pet", "xray", "us")


@dataclass(frozen=True)
class Grid:
    """A voxel grid: array shape and the affine from voxel index (i, j, k) to world RAS+ mm."""

    shape: tuple[int, ...]
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def orientation(self) -> str:
        """Axis codes of the voxel axes in world terms, e.g. 'RAS' or 'LPS' (nibabel's convention)."""
        return "".join(nib.aff2axcodes(self.affine))

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """World RAS+ mm of voxel indices given as (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def voxel(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of world RAS+ points given as (..., 3)."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def corners_world(self) -> np.ndarray:
        """World positions of the 8 corner voxel centres: what 'the same grid' is checked on."""
        ni, nj, nk = (list(self.shape) + [1, 1, 1])[:3]
        corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)])
        return self.world(corners)

    def max_offset_mm(self, other: "Grid") -> float:
        """Largest distance between corresponding corner voxel centres (inf if shapes differ)."""
        if tuple(self.shape[:3]) != tuple(other.shape[:3]):
            return float("inf")
        return float(np.max(np.linalg.norm(self.corners_world() - other.corners_world(), axis=1)))


@dataclass
class Provenance:
    """Where a scan came from: enough to cite it and to write DICOM that references it."""

    path: str
    format: str  # nifti | nrrd | mgh | dicom | image2d
    study_uid: str | None = None
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str | None = None
    # DICOM: the instance files in slice order (index k of the voxel array), for DICOM SEG export.
    dicom_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Scan:
    """Voxels in the file's own axis order plus the affine to world RAS+ mm.

    The array is never reoriented or resampled here; engines work on reversible views
    (`prosector.geometry`) and return masks on this grid.
    """

    data: np.ndarray
    affine: np.ndarray
    modality: str
    provenance: Provenance
    is_2d: bool = False
    # The NIfTI header of a NIfTI input: masks are written with its qform/sform and codes.
    nifti_header: Any = None
    warnings: list[str] = field(default_factory=list)

    @property
    def grid(self) -> Grid:
        return Grid(tuple(self.data.shape[:3]), np.asarray(self.affine, dtype=float))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing

    @property
    def orientation(self) -> str:
        return self.grid.orientation

    @property
    def path(self) -> Path:
        return Path(self.provenance.path)

    @property
    def name(self) -> str:
        """File name without scan extensions, for output names."""
        name = self.path.name
        for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mgz", ".mgh", ".zip", ".png", ".jpg", ".jpeg"):
            if name.lower().endswith(ext):
                return name[: -len(ext)]
        return name
