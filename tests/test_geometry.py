"""Geometry is correctness: the same anatomy in any of the 48 axis orders/directions gives the
same world answer, masks land on each file's own grid, and different grids are refused."""
from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from prosector.errors import InputError
from prosector.geometry import CropView, OrientationView, ResampleView, align_to_grid, body_box
from prosector.io import load_scan
from prosector.measure import measure
from prosector.models.precomputed import PrecomputedEngine
from prosector.scan import Grid
from tests.conftest import TOTALSEG

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"


def reoriented(img: nib.Nifti1Image, perm: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> nib.Nifti1Image:
    """The same voxels and world positions stored with axes permuted and reversed."""
    data = np.asanyarray(img.dataobj)
    affine = img.affine.copy()
    shape = data.shape
    # new voxel index n maps to old index: old[perm[a]] = n[a] (or reversed)
    to_old = np.zeros((4, 4))
    to_old[3, 3] = 1
    for a, b in enumerate(perm):
        if flips[a]:
            to_old[b, a] = -1
            to_old[b, 3] = shape[b] - 1
        else:
            to_old[b, a] = 1
    new = np.transpose(data, perm)
    for a in range(3):
        if flips[a]:
            new = np.flip(new, axis=a)
    out = nib.Nifti1Image(np.ascontiguousarray(new), affine @ to_old, header=img.header.copy())
    out.set_sform(affine @ to_old, code=2)
    out.set_qform(affine @ to_old, code=1)
    return out


ORIENTATIONS = [(p, f) for p in itertools.permutations(range(3)) for f in itertools.product([False, True], repeat=3)]


@pytest.fixture(scope="module")
def reference():
    scan = load_scan(CT)
    left, right = PrecomputedEngine(SEG).segment(scan, ["adrenal_gland_left", "adrenal_gland_right"])
    return measure(left, scan), measure(right, scan)


def test_reference_sides_in_world(reference):
    left, right = reference
    # RAS+: x grows toward the patient's right; the left adrenal sits near x = -47 mm.
    assert left.centroid_world_mm[0] == pytest.approx(-47, abs=5)
    assert right.centroid_world_mm[0] == pytest.approx(30, abs=5)


def test_48_orientations_give_the_same_world_answer(tmp_path, reference):
    assert len(ORIENTATIONS) == 48
    ct_img, seg_img = nib.load(CT), nib.load(SEG)
    ref_left, ref_right = reference
    for perm, flips in ORIENTATIONS:
        ct_path, seg_path = tmp_path / "ct.nii", tmp_path / "seg.nii"
        nib.save(reoriented(ct_img, perm, flips), str(ct_path))
        nib.save(reoriented(seg_img, perm, flips), str(seg_path))
        scan = load_scan(ct_path)
        left, right = PrecomputedEngine(seg_path).segment(scan, ["adrenal_gland_left", "adrenal_gland_right"])
        assert left.data.shape == scan.shape, (perm, flips)
        m_left, m_right = measure(left, scan), measure(right, scan)
        assert np.allclose(m_left.centroid_world_mm, ref_left.centroid_world_mm, atol=0.01), (perm, flips)
        assert m_left.voxel_count == ref_left.voxel_count
        assert m_left.centroid_world_mm[0] < m_right.centroid_world_mm[0], (perm, flips)


def test_segmentation_in_another_axis_order_is_accepted_exactly(tmp_path):
    """A LAS-stored segmentation beside an RAS scan is the same grid: lossless, no resampling."""
    scan = load_scan(CT)
    seg = nib.load(SEG)
    flipped = reoriented(seg, (0, 1, 2), (True, False, False))
    assert "".join(nib.aff2axcodes(flipped.affine)) == "LAS"
    aligned = align_to_grid(np.asanyarray(flipped.dataobj), flipped.affine, scan.grid)
    assert np.array_equal(aligned, np.asanyarray(seg.dataobj))


def test_segmentation_on_a_different_grid_is_refused():
    grid = load_scan(CT).grid
    data = np.asanyarray(nib.load(SEG).dataobj)
    shifted = grid.affine.copy()
    shifted[0, 3] += 0.01  # 10 micrometres: beyond the 1e-3 mm tolerance
    with pytest.raises(InputError, match="different grid"):
        align_to_grid(data, shifted, grid)
    with pytest.raises(InputError, match="different grid"):
        align_to_grid(data[:, :, :-1], grid.affine, grid)
    tiny = grid.affine.copy()
    tiny[0, 3] += 1e-5  # float32 header noise stays the same grid
    assert align_to_grid(data, tiny, grid).shape == data.shape


def test_orientation_view_round_trip_is_exact():
    scan = load_scan(TOTALSEG / "example_mr_sm.nii.gz", modality="mr")
    view = OrientationView.of(scan.grid, "RAS")
    assert view.target.orientation == "RAS"
    ras = view.forward(scan.data)
    assert np.array_equal(view.inverse(ras), scan.data)
    # the same voxel keeps its world position
    i, j, k = 10, 20, 5
    n = scan.shape
    assert np.allclose(view.target.world([n[0] - 1 - i, n[1] - 1 - j, k]), scan.grid.world([i, j, k]))


def test_resample_and_crop_views_map_back_onto_the_original_grid():
    scan = load_scan(CT)
    mask = PrecomputedEngine(SEG).segment(scan, ["liver"])[0].data
    view = ResampleView.of(scan.grid, (1.5, 1.5, 1.5))
    assert view.target.spacing == pytest.approx((1.5, 1.5, 1.5))
    fine = view.forward(mask, order=0)
    # same field of view: the outer corners of both grids coincide
    assert np.allclose(view.target.world([-0.5, -0.5, -0.5]), scan.grid.world([-0.5, -0.5, -0.5]))
    assert np.array_equal(view.inverse(fine, order=0), mask)
    volume_fine = fine.sum() * 1.5 ** 3
    assert volume_fine == pytest.approx(mask.sum() * 27, rel=0.02)
    lo, hi = body_box(scan.data, -500)
    crop = CropView.of(scan.grid, lo, hi)
    inner = crop.forward(mask)
    assert np.array_equal(crop.inverse(inner), mask)
    assert np.allclose(crop.target.world([0, 0, 0]), scan.grid.world(lo))


def test_grid_corner_offset():
    g = Grid((4, 5, 6), np.diag([2.0, 2.0, 2.0, 1.0]))
    h = Grid((4, 5, 6), np.diag([2.0, 2.0, 2.0, 1.0]) + np.array([[0, 0, 0, 1.0]] + [[0] * 4] * 3))
    assert g.max_offset_mm(h) == pytest.approx(1.0)
