"""2D images (PNG/JPEG): flagged 2D, with no world geometry beyond pixel indices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from prosector.errors import InputError
from prosector.io.nifti import _short
from prosector.scan import Provenance, Scan


def load_image2d(path: Path, modality: str | None = None) -> Scan:
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"))
    except Exception as err:
        raise InputError(f"not a readable image ({_short(err)})", path=path) from None
    # Our voxel order is data[x, y, z]; a picture's array is [row, column] = [y, x].
    data = np.ascontiguousarray(gray.T[:, :, None])
    scan = Scan(data=data, affine=np.eye(4), modality=modality or "unknown",
                provenance=Provenance(path=str(path), format="image2d"), is_2d=True)
    scan.provenance.notes.append("2D image: pixel indices only, no world orientation")
    return scan
