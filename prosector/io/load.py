"""`load_scan`: one entry point that picks the reader by what the path is, then checks the result."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from prosector.errors import InputError
from prosector.scan import MODALITIES, Scan
from prosector.io.modality import check_modality

VOLUME_SUFFIXES = {
    ".nii": "nifti", ".nii.gz": "nifti",
    ".nrrd": "nrrd", ".nhdr": "nrrd",
    ".mgh": "mgh", ".mgz": "mgh",
    ".png": "image2d", ".jpg": "image2d", ".jpeg": "image2d",
    ".dcm": "dicom", ".zip": "dicom",
}


def detect_format(path: Path) -> str:
    """Which reader handles `path`: by folder, then by suffix."""
    if path.is_dir():
        return "dicom"
    name = path.name.lower()
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            if suffix == ".zip" and not zipfile.is_zipfile(path):
                raise InputError("not a readable zip archive", path=path)
            return VOLUME_SUFFIXES[suffix]
    raise InputError(
        "unrecognised file type",
        path=path,
        hint="Give a NIfTI (.nii/.nii.gz), NRRD, MGH/MGZ, a DICOM folder or .zip, or a PNG/JPEG.",
    )


def load_scan(
    path: str | Path,
    modality: str | None = None,
    series_uid: str | None = None,
    *,
    require_3d: bool = False,
) -> Scan:
    """Read a scan in its own grid. `modality` overrides what the file says (ct|mr|pet|xray|us)."""
    path = Path(path)
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    fmt = detect_format(path)
    if fmt == "nifti":
        from prosector.io.nifti import load_nifti as reader
    elif fmt == "nrrd":
        from prosector.io.itk import load_itk as reader
    elif fmt == "mgh":
        from prosector.io.mgh import load_mgh as reader
    elif fmt == "image2d":
        from prosector.io.image2d import load_image2d as reader
    else:
        from prosector.io.dicom import load_dicom_series

        scan = load_dicom_series(path, series_uid=series_uid, modality=modality)
        return _checked(scan, modality, require_3d)
    if series_uid is not None:
        raise InputError("--series applies only to DICOM input", path=path)
    return _checked(reader(path, modality), modality, require_3d)


def _checked(scan: Scan, modality: str | None, require_3d: bool) -> Scan:
    path = scan.provenance.path
    if require_3d and scan.is_2d:
        raise InputError(
            f"is a 2D image ({scan.data.shape[0]}x{scan.data.shape[1]}); a 3D scan is required here",
            path=path,
            hint="Give a CT or MR volume (NIfTI, NRRD, MGZ or DICOM series).",
        )
    affine = np.asarray(scan.affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError("the voxel-to-world affine is missing or not finite", path=path)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(
            "the voxel-to-world affine is singular (zero voxel size or collapsed axes)",
            path=path,
            hint="Fix the header's pixdim/qform/sform; the scan's geometry cannot be trusted.",
        )
    if np.issubdtype(scan.data.dtype, np.floating) and not np.all(np.isfinite(scan.data)):
        bad = int(np.count_nonzero(~np.isfinite(scan.data)))
        raise InputError(
            f"{bad} voxels are NaN or infinite",
            path=path,
            hint="Measurements on such a scan would be silently wrong; repair or re-export it.",
        )
    check_modality(scan, modality)
    return scan
