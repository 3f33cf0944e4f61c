"""NIfTI reading, keeping the header so that masks can be written on exactly the same grid."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from prosector.errors import InputError
from prosector.scan import Provenance, Scan


def read_nifti_image(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load header and voxels, turning every way a file can be broken into one clear message."""
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for non-NIfTI content
        raise InputError(f"not a readable NIfTI file ({_short(err)})", path=path,
                         hint="Check the file is a complete .nii/.nii.gz image.") from None
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # truncated gzip: EOFError, zlib.error, OSError
        raise InputError(f"voxel data cannot be read; the file is truncated or corrupt ({_short(err)})",
                         path=path, hint="Copy or export the scan again.") from None
    return img, data


def load_nifti(path: Path, modality: str | None = None) -> Scan:
    img, data = read_nifti_image(path)
    is_2d = False
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data, is_2d = data[:, :, None], True
    if data.ndim != 3:
        raise InputError(f"has shape {data.shape}; a single 3D volume is expected", path=path,
                         hint="Split 4D series into volumes first (e.g. `fslsplit`).")
    if np.issubdtype(data.dtype, np.floating) and data.dtype != np.float32:
        data = data.astype(np.float32)
    header = img.header.copy() if isinstance(img, nib.Nifti1Image) else None
    return Scan(
        data=data,
        affine=np.asarray(img.affine, dtype=float),
        modality="unknown",
        provenance=Provenance(path=str(path), format="nifti"),
        is_2d=is_2d,
        nifti_header=header,
    )


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]
