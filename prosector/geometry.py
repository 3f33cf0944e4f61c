"""Grids and reversible views of them.

A scan never leaves its own grid. Engines that need another one (RAS order, a fixed spacing, a
crop) take a *view*: `forward` carries arrays from the scan's grid to the view's grid, `inverse`
carries results back. Orientation and crop views are exact both ways; a resampling view maps back
by resampling onto the original grid (nearest for labels, linear for intensities).
"""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from prosector.errors import InputError
from prosector.scan import Grid

# Two grids whose voxel centres differ by less than this are the same grid.
GRID_TOLERANCE_MM = 1e-3


# --- the same grid, stored another way -------------------------------------------------------

def axis_mapping(source: Grid, target: Grid) -> tuple[list[int], list[bool]] | None:
    """How `source`'s axes map onto `target`'s when both hold the same voxel centres.

    Returns (perm, flip): target axis a is source axis perm[a], reversed where flip[a];
    None when the grids are not a lossless reordering of each other within GRID_TOLERANCE_MM.
    """
    if len(source.shape) < 3 or len(target.shape) < 3:
        return None
    to_target = np.linalg.inv(target.affine) @ source.affine  # source voxel -> target voxel
    rot = np.round(to_target[:3, :3])
    if not (np.all(np.abs(rot).sum(axis=0) == 1) and np.all(np.abs(rot).sum(axis=1) == 1)):
        return None
    perm = [int(np.flatnonzero(rot[a])[0]) for a in range(3)]
    flip = [bool(rot[a, perm[a]] < 0) for a in range(3)]
    if [source.shape[perm[a]] for a in range(3)] != list(target.shape[:3]):
        return None
    # Every source corner must land on the matching target voxel centre, in world millimetres.
    src_corners = np.array([[i, j, k] for i in (0, source.shape[0] - 1)
                            for j in (0, source.shape[1] - 1) for k in (0, source.shape[2] - 1)])
    tgt_corners = np.empty_like(src_corners)
    for a in range(3):
        b = perm[a]
        tgt_corners[:, a] = (target.shape[a] - 1 - src_corners[:, b]) if flip[a] else src_corners[:, b]
    offset = np.linalg.norm(source.world(src_corners) - target.world(tgt_corners), axis=1).max()
    return (perm, flip) if offset <= GRID_TOLERANCE_MM else None


def reorder_onto(data: np.ndarray, perm: list[int], flip: list[bool]) -> np.ndarray:
    out = np.transpose(data, perm + list(range(3, data.ndim)))
    for a in range(3):
        if flip[a]:
            out = np.flip(out, axis=a)
    return np.ascontiguousarray(out)


def align_to_grid(data: np.ndarray, affine: np.ndarray, grid: Grid, *, what: str = "segmentation") -> np.ndarray:
    """Put an array stored on its own grid onto `grid`, losslessly, or refuse.

    Accepts the same voxel centres in another axis order or direction (e.g. LAS beside LPS);
    anything else is a different grid and an error, never a silent resampling.
    """
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    source = Grid(tuple(data.shape), np.asarray(affine, dtype=float))
    mapping = axis_mapping(source, grid)
    if mapping is None:
        raise InputError(
            f"{what} lies on a different grid than the scan "
            f"({'x'.join(map(str, source.shape[:3]))} {source.orientation} spacing "
            f"{_fmt(source.spacing)} vs {'x'.join(map(str, grid.shape[:3]))} {grid.orientation} "
            f"spacing {_fmt(grid.spacing)}; largest voxel-centre offset {describe_offset(source, grid)})",
            hint="Give the segmentation that was computed on this very scan; Prosector never resamples it silently.",
        )
    return reorder_onto(data, *mapping)


def describe_offset(source: Grid, target: Grid) -> str:
    offset = source.max_offset_mm(target)
    return "n/a, shapes differ" if not np.isfinite(offset) else f"{offset:.3g} mm"


def _fmt(spacing: tuple[float, ...]) -> str:
    return "x".join(f"{s:.3g}" for s in spacing)


# --- reversible views ------------------------------------------------------------------------

@dataclass
class GridView:
    """A view of `source` on `target`. Subclasses say how arrays travel between them."""

    source: Grid
    target: Grid

    def forward(self, data: np.ndarray, *, order: int = 1) -> np.ndarray:
        return resample_onto(data, self.source, self.target, order=order, edge="nearest")

    def inverse(self, data: np.ndarray, *, order: int = 0) -> np.ndarray:
        return resample_onto(data, self.target, self.source, order=order, edge="nearest")


@dataclass
class OrientationView(GridView):
    """The same voxels in another axis order (default RAS): exact both ways."""

    perm: list[int] = None
    flip: list[bool] = None

    @classmethod
    def of(cls, grid: Grid, axcodes: str = "RAS") -> "OrientationView":
        start = nib.orientations.io_orientation(grid.affine)
        transform = nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(tuple(axcodes)))
        shape = tuple(grid.shape[:3])
        new_affine = grid.affine @ nib.orientations.inv_ornt_aff(transform, shape)
        new_shape = tuple(int(shape[int(np.flatnonzero(transform[:, 0] == a)[0])]) for a in range(3))
        target = Grid(new_shape, new_affine)
        perm, flip = axis_mapping(grid, target)
        return cls(grid, target, perm, flip)

    def forward(self, data: np.ndarray, **_: object) -> np.ndarray:
        return reorder_onto(data, self.perm, self.flip)

    def inverse(self, data: np.ndarray, **_: object) -> np.ndarray:
        back = axis_mapping(self.target, self.source)
        return reorder_onto(data, *back)


@dataclass
class CropView(GridView):
    """A box of the source grid, [lo, hi) in source voxel indices: exact both ways."""

    lo: tuple[int, int, int] = (0, 0, 0)
    hi: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def of(cls, grid: Grid, lo, hi) -> "CropView":
        lo = tuple(int(max(0, v)) for v in lo)
        hi = tuple(int(min(n, v)) for n, v in zip(grid.shape[:3], hi))
        if any(h <= l for l, h in zip(lo, hi)):
            raise InputError(f"crop box {lo}..{hi} is empty or outside the scan {grid.shape[:3]}")
        affine = grid.affine.copy()
        affine[:3, 3] = grid.world(np.array(lo, dtype=float))
        shape = tuple(h - l for l, h in zip(lo, hi))
        return cls(grid, Grid(shape, affine), lo, hi)

    def forward(self, data: np.ndarray, **_: object) -> np.ndarray:
        return np.ascontiguousarray(data[tuple(slice(l, h) for l, h in zip(self.lo, self.hi))])

    def inverse(self, data: np.ndarray, *, cval: float = 0, **_: object) -> np.ndarray:
        out = np.full(tuple(self.source.shape[:3]) + data.shape[3:], cval, dtype=data.dtype)
        out[tuple(slice(l, h) for l, h in zip(self.lo, self.hi))] = data
        return out


@dataclass
class ResampleView(GridView):
    """The source's field of view at another spacing, axes kept; maps back by resampling."""

    @classmethod
    def of(cls, grid: Grid, spacing) -> "ResampleView":
        spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
        old = np.asarray(grid.spacing)
        shape = tuple(max(1, int(round(n * o / s))) for n, o, s in zip(grid.shape[:3], old, spacing))
        directions = grid.affine[:3, :3] / old
        # Keep the outer edge of the field of view: the first voxel's corner stays where it was.
        corner = grid.affine[:3, 3] - directions @ (old / 2)
        affine = np.eye(4)
        affine[:3, :3] = directions * spacing
        affine[:3, 3] = corner + directions @ (spacing / 2)
        return cls(grid, Grid(shape, affine))


def resample_onto(data: np.ndarray, source: Grid, target: Grid, *, order: int,
                  edge: str = "constant", cval: float = 0.0) -> np.ndarray:
    """Sample `data` (on `source`) at `target`'s voxel centres: order 0 for labels, 1 for intensities.

    `edge="nearest"` for views of the same field of view, whose outer half-voxel lies just past
    the source's outermost centres; "constant" (cval) where the target reaches beyond the source.
    """
    to_source = np.linalg.inv(source.affine) @ target.affine  # target voxel -> source voxel
    src = data.astype(np.uint8) if data.dtype == bool else data
    out = ndimage.affine_transform(
        src, to_source[:3, :3], offset=to_source[:3, 3], output_shape=tuple(target.shape[:3]),
        order=order, mode=edge, cval=cval, prefilter=False,
    )
    return out.astype(bool) if data.dtype == bool else out


def body_box(data: np.ndarray, threshold: float, margin: int = 2) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Bounding box [lo, hi) of voxels above `threshold` (the body on CT at about -500 HU)."""
    inside = data > threshold
    if not inside.any():
        return (0, 0, 0), tuple(data.shape[:3])
    idx = [np.flatnonzero(inside.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    lo = tuple(max(0, int(i[0]) - margin) for i in idx)
    hi = tuple(min(n, int(i[-1]) + 1 + margin) for n, i in zip(data.shape, idx))
    return lo, hi
