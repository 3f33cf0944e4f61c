"""SAT's input preparation as reversible views: RAS, 1x1x3 mm, foreground crop, intensity z-score.

Conventions are those of the reference (MONAI 1.1.0 defaults), checked against
../shared/fixtures/sat_parity/preprocessing/: the 1x1x3 mm grid starts at the first voxel
centre and has round((n-1)*old/new + 1) voxels per axis (border padding beyond the last centre);
the crop is the bounding box of voxels > 0 before normalisation; CT is clipped to [-500, 1000],
every other modality to its 0.5-99.5 percentiles, then z-scored. Unlike the reference, every
step keeps its grid, so results go back onto the scan's own voxels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prosector.errors import InputError
from prosector.geometry import CropView, GridView, OrientationView, resample_onto
from prosector.scan import Grid, Scan

SAT_SPACING = (1.0, 1.0, 3.0)
CT_CLIP = (-500.0, 1000.0)
PERCENTILE_CLIP = (0.5, 99.5)


@dataclass
class SpacingView(GridView):
    """MONAI-style respacing: same first voxel centre and axis directions, new spacing."""

    @classmethod
    def of(cls, grid: Grid, spacing=SAT_SPACING) -> "SpacingView":
        new = np.asarray(spacing, dtype=float)
        old = np.asarray(grid.spacing)
        shape = tuple(max(1, int(np.round((n - 1) * o / s + 1))) for n, o, s in zip(grid.shape[:3], old, new))
        affine = grid.affine.copy()
        affine[:3, :3] = grid.affine[:3, :3] / old * new
        return cls(grid, Grid(shape, affine))


def foreground_box(volume: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """[lo, hi) of voxels > 0, margin 0 (MONAI CropForeground's default); all of it if none."""
    inside = volume > 0
    if not inside.any():
        return (0, 0, 0), tuple(volume.shape[:3])
    idx = [np.flatnonzero(inside.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    return tuple(int(i[0]) for i in idx), tuple(int(i[-1]) + 1 for i in idx)


def normalise(volume: np.ndarray, modality: str) -> np.ndarray:
    """Clip then z-score in float32 numpy, as the reference does (population std)."""
    x = volume.astype(np.float32, copy=True)
    if modality.lower() == "ct":
        lo, hi = CT_CLIP
    else:
        lo, hi = (float(v) for v in np.percentile(x, PERCENTILE_CLIP))
    np.clip(x, lo, hi, out=x)
    mean, std = x.mean(), x.std()
    x -= mean
    if std > 0:  # a constant volume stays all zeros instead of turning into NaN
        x /= std
    return x


@dataclass
class Prepared:
    """The model-ready volume and the chain of views that leads back to the scan's grid."""

    volume: np.ndarray           # (H, W, D) float32 on `crop.target`
    orientation: OrientationView
    spacing: SpacingView
    crop: CropView

    @property
    def grid(self) -> Grid:
        return self.crop.target

    def to_scan_grid(self, probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """A probability map on the cropped 1x1x3 grid -> boolean mask on the scan's own grid.

        Probabilities are interpolated linearly at the scan's voxel centres (0 outside the crop,
        where SAT never looked) and thresholded there: no nearest-neighbour staircase.
        """
        to_source = np.linalg.inv(self.crop.target.affine) @ self.orientation.target.affine
        if not np.allclose(to_source[:3, :3], np.diag(np.diag(to_source[:3, :3])), atol=1e-9):
            # Not reachable with SAT's own views (they only scale and shift axes); kept for safety.
            probability = probability.cpu().numpy() if hasattr(probability, "cpu") else probability
            on_ras = resample_onto(probability.astype(np.float32), self.crop.target, self.orientation.target, order=1, edge="constant")
            return self.orientation.inverse(on_ras > threshold)
        scale, offset, shape = np.diag(to_source)[:3], to_source[:3, 3], self.orientation.target.shape
        if hasattr(probability, "cpu"):  # a torch tensor (on the GPU): interpolate there, bring back booleans
            inside = separable_linear_torch(probability.float(), scale, offset, shape) > threshold
            return self.orientation.inverse(inside.cpu().numpy())
        on_ras = separable_linear(probability.astype(np.float32, copy=False), scale, offset, shape)
        return self.orientation.inverse(on_ras > threshold)


def separable_linear(data: np.ndarray, scale, offset, shape) -> np.ndarray:
    """Linear interpolation of `data` at index*scale+offset per axis; 0 outside [0, n-1].

    The views between SAT's grid and the scan's RAS grid only scale and shift each axis, so
    three 1-D passes restricted to where the source reaches replace a full 3-D resampling:
    the same values as scipy's order-1 'constant' mode, many times faster on large scans.
    """
    out = np.zeros(tuple(int(n) for n in shape), dtype=np.float32)
    block, where = data, []
    for axis in range(3):
        stencil = _axis_stencil(data.shape[axis], int(shape[axis]), scale[axis], offset[axis])
        if stencil is None:
            return out
        box, i0, i1, w = stencil
        where.append(box)
        view = [1, 1, 1]
        view[axis] = -1
        w = w.reshape(view)
        block = np.take(block, i0, axis=axis) * (1 - w) + np.take(block, i1, axis=axis) * w
    out[tuple(where)] = block
    return out


def _axis_stencil(n: int, m: int, scale: float, offset: float):
    """Where output positions 0..m-1 fall in an axis of n: the reachable range, i0, i1 and weights."""
    coords = np.arange(m) * float(scale) + float(offset)
    inside = np.flatnonzero((coords >= -1e-6) & (coords <= n - 1 + 1e-6))
    if inside.size == 0:
        return None
    c = np.clip(coords[inside[0] : inside[-1] + 1], 0, n - 1)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n - 2, 0))
    return slice(int(inside[0]), int(inside[-1]) + 1), i0, np.minimum(i0 + 1, n - 1), (c - i0).astype(np.float32)


def separable_linear_torch(data, scale, offset, shape):
    """`separable_linear` for a torch tensor, on its device (the GPU path of SAT's way back)."""
    import torch

    out = torch.zeros(tuple(int(n) for n in shape), dtype=torch.float32, device=data.device)
    block, where = data, []
    for axis in range(3):
        stencil = _axis_stencil(data.shape[axis], int(shape[axis]), scale[axis], offset[axis])
        if stencil is None:
            return out
        box, i0, i1, w = stencil
        where.append(box)
        view = [1, 1, 1]
        view[axis] = -1
        w = torch.from_numpy(w).to(data.device).view(view)
        lo = block.index_select(axis, torch.from_numpy(i0).to(data.device))
        hi = block.index_select(axis, torch.from_numpy(i1).to(data.device))
        block = torch.lerp(lo, hi, w)
        del lo, hi
    out[tuple(where)] = block
    return out


def require_volume(scan: Scan) -> np.ndarray:
    """The scan's 3D array, or an InputError for 2D images and multi-volume data."""
    if scan.is_2d or scan.data.ndim < 3 or min(scan.data.shape[:3]) < 1:
        raise InputError("SAT segments 3D volumes; this is a 2D image", path=scan.provenance.path)
    data = scan.data
    if data.ndim > 3:
        if any(s != 1 for s in data.shape[3:]):
            raise InputError(f"SAT takes one 3D volume; this scan has shape {data.shape}", path=scan.provenance.path)
        data = data.reshape(data.shape[:3])
    return data


def prepare(scan: Scan) -> Prepared:
    """Scan -> SAT's normalised, RAS, 1x1x3 mm, foreground-cropped volume (+ the way back)."""
    data = require_volume(scan)
    orientation = OrientationView.of(scan.grid, "RAS")
    ras = orientation.forward(np.asarray(data, dtype=np.float32))
    spacing = SpacingView.of(orientation.target)
    resampled = resample_onto(ras, spacing.source, spacing.target, order=1, edge="nearest")
    del ras
    lo, hi = foreground_box(resampled)
    crop = CropView.of(spacing.target, lo, hi)
    volume = normalise(crop.forward(resampled), scan.modality)
    return Prepared(volume, orientation, spacing, crop)
