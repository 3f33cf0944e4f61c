"""FreeSurfer MGH/MGZ reading (nibabel gives the RAS affine directly)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from prosector.errors import InputError
from prosector.io.nifti import _short
from prosector.scan import Provenance, Scan


def load_mgh(path: Path, modality: str | None = None) -> Scan:
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as err:
        raise InputError(f"not a readable MGH/MGZ file ({_short(err)})", path=path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"has shape {data.shape}; a single 3D volume is expected", path=path)
    return Scan(data=data, affine=np.asarray(img.affine, dtype=float), modality="unknown",
                provenance=Provenance(path=str(path), format="mgh"))
