"""NRRD (and other ITK formats) through SimpleITK, converted to our voxel order and RAS affine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from prosector.errors import InputError
from prosector.io.nifti import _short
from prosector.scan import Provenance, Scan

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def itk_affine(image: sitk.Image) -> np.ndarray:
    """Voxel (i, j, k) -> world RAS+ mm for an ITK image (ITK works in LPS)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    affine[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ affine


def read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels as data[i, j, k] (ITK's arrays come as [k, j, i]) and the RAS affine."""
    try:
        image = sitk.ReadImage(str(path))
    except Exception as err:
        raise InputError(f"not a readable image ({_short(err)})", path=path) from None
    if image.GetDimension() != 3:
        raise InputError(f"has {image.GetDimension()} dimensions; a 3D volume is expected", path=path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("has vector pixels; a scalar volume is expected", path=path)
    data = np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    return data, itk_affine(image)


def load_itk(path: Path, modality: str | None = None) -> Scan:
    data, affine = read_itk(path)
    if np.issubdtype(data.dtype, np.floating) and data.dtype != np.float32:
        data = data.astype(np.float32)
    return Scan(data=data, affine=affine, modality="unknown",
                provenance=Provenance(path=str(path), format="nrrd"))
