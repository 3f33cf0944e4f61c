"""Shared by the SAT benchmarks: making prosector importable from a bare checkout, a synthetic CT."""
from __future__ import annotations

import importlib
import resource
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def ensure_prosector() -> None:
    """Import prosector.models from the checkout when the package is not installed (GPU machines)."""
    try:
        importlib.import_module("prosector.models.sat")
        return
    except ImportError:
        pass
    sys.path.insert(0, str(REPO))
    importlib.import_module("prosector")
    # The installed layout maps prosector.models -> models/; recreate that mapping by hand.
    sys.modules["prosector.models"] = importlib.import_module("models")
    importlib.import_module("prosector.models.sat")


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_ct(shape=(512, 512, 300), spacing=(0.8, 0.8, 1.5), seed: int = 0):
    """An abdomen-like CT phantom in HU (LPS like DICOM-derived NIfTI): air, fat, organs, spine, lungs."""
    ensure_prosector()
    from prosector.scan import Provenance, Scan

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x = (np.arange(nx) - nx / 2)[:, None] * spacing[0]
    y = (np.arange(ny) - ny / 2)[None, :] * spacing[1]
    body = (x / 170) ** 2 + (y / 120) ** 2 <= 1
    fat_ring = body & ((x / 155) ** 2 + (y / 105) ** 2 > 1)
    liver = ((x + 60) / 70) ** 2 + ((y - 10) / 60) ** 2 <= 1
    spine = (x / 18) ** 2 + ((y + 70) / 18) ** 2 <= 1
    aorta = ((x - 15) / 11) ** 2 + ((y + 45) / 11) ** 2 <= 1
    volume = np.full(shape, -1000, dtype=np.int16)
    z_lungs = int(nz * 0.7)
    for k in range(nz):
        sl = np.where(body, 40, -1000).astype(np.int16)
        sl[fat_ring] = -90
        if k < z_lungs:
            sl[liver] = 60
        else:  # the top of the volume: lungs instead of liver
            sl[((np.abs(x) - 75) / 55) ** 2 + (y / 80) ** 2 <= 1] = -820
        sl[aorta] = 180
        sl[spine] = 700
        volume[:, :, k] = sl
    volume += rng.normal(0, 12, size=shape).astype(np.int16)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [nx / 2 * spacing[0], ny / 2 * spacing[1], -nz / 2 * spacing[2]]
    return Scan(volume, affine, "ct", Provenance(path=f"synthetic_ct_{nx}x{ny}x{nz}", format="nifti"))
