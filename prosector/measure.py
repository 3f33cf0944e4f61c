"""Measurements of one mask on its scan: size, intensity, position, extent, and whether it is cut off."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from prosector.mask import Mask
from prosector.scan import Scan

# A structure this close to the scan's edge may continue outside it: its volume is a lower bound.
BORDER_MARGIN_VOXELS = 3


@dataclass
class Measurements:
    name: str
    voxel_count: int
    volume_mm3: float
    volume_ml: float
    intensity_mean: float | None
    intensity_median: float | None
    intensity_std: float | None
    intensity_min: float | None
    intensity_max: float | None
    intensity_unit: str            # "HU" on CT, "a.u." otherwise
    centroid_world_mm: list[float] | None   # RAS+
    centroid_voxel: list[float] | None
    bbox_world_mm: list[list[float]] | None  # [[xmin, ymin, zmin], [xmax, ymax, zmax]], RAS+, voxel centres
    bbox_voxel: list[list[int]] | None       # [[imin, jmin, kmin], [imax, jmax, kmax]], inclusive
    extent_mm: dict[str, float] | None       # largest extent along world x (left-right), y, z
    components: int
    touches_border: bool
    border_axes: list[str]                   # which voxel-axis sides it touches, e.g. ["k-", "k+"]
    empty: bool

    def to_dict(self) -> dict:
        return asdict(self)


def measure(mask: Mask, scan: Scan) -> Measurements:
    data = mask.data
    count = int(np.count_nonzero(data))
    grid = scan.grid
    volume = count * grid.voxel_volume_mm3
    unit = "HU" if scan.modality == "ct" else "a.u."
    if count == 0:
        return Measurements(mask.name, 0, 0.0, 0.0, None, None, None, None, None, unit,
                            None, None, None, None, None, 0, False, [], True)
    values = np.asarray(scan.data[data], dtype=np.float64)
    ijk = np.argwhere(data)
    lo, hi = ijk.min(axis=0), ijk.max(axis=0)
    world = grid.world(ijk)
    _, components = ndimage.label(data, structure=np.ones((3, 3, 3), dtype=bool))
    border = _border_sides(lo, hi, data.shape)
    # Extent: the span of voxel centres plus one voxel's reach along that world axis.
    reach = np.abs(grid.affine[:3, :3]).sum(axis=1)
    span = world.max(axis=0) - world.min(axis=0) + reach
    return Measurements(
        name=mask.name,
        voxel_count=count,
        volume_mm3=round(float(volume), 4),
        volume_ml=round(float(volume) / 1000.0, 6),
        intensity_mean=float(values.mean()),
        intensity_median=float(np.median(values)),
        intensity_std=float(values.std()),
        intensity_min=float(values.min()),
        intensity_max=float(values.max()),
        intensity_unit=unit,
        centroid_world_mm=[float(v) for v in world.mean(axis=0)],
        centroid_voxel=[float(v) for v in ijk.mean(axis=0)],
        bbox_world_mm=[[float(v) for v in world.min(axis=0)], [float(v) for v in world.max(axis=0)]],
        bbox_voxel=[[int(v) for v in lo], [int(v) for v in hi]],
        extent_mm={"x": float(span[0]), "y": float(span[1]), "z": float(span[2])},
        components=int(components),
        touches_border=bool(border),
        border_axes=border,
        empty=False,
    )


def _border_sides(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> list[str]:
    sides = []
    for axis, name in enumerate("ijk"):
        if lo[axis] < BORDER_MARGIN_VOXELS:
            sides.append(f"{name}-")
        if hi[axis] > shape[axis] - 1 - BORDER_MARGIN_VOXELS:
            sides.append(f"{name}+")
    return sides
