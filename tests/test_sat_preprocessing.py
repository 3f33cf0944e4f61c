"""SAT preprocessing and tiling against the reference facts in ../shared/fixtures/sat_parity/preprocessing."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from prosector.io import load_scan
from prosector.models.sat.preprocess import prepare
from prosector.models.sat.tiling import gaussian_weights, tiles

from conftest import SHARED

PRE = SHARED / "fixtures" / "sat_parity" / "preprocessing"
META = json.loads((PRE / "preprocessing_meta.json").read_text())
SLIDING = json.loads((PRE / "sliding_window_reference.json").read_text())


def boxes(tile_list):
    return [[t[0].start, t[0].stop, t[1].start, t[1].stop, t[2].start, t[2].stop] for t in tile_list]


def test_ct_preprocessing_matches_reference():
    meta = META["ct"]
    prepared = prepare(load_scan(PRE / "ct_raw.nii.gz", modality="ct"))
    assert list(prepared.spacing.target.shape) == meta["after_orientation_spacing_shape"]
    np.testing.assert_allclose(prepared.spacing.target.affine, meta["after_orientation_spacing_affine"], atol=1e-4)
    assert [[lo, hi] for lo, hi in zip(prepared.crop.lo, prepared.crop.hi)] == meta["crop_foreground_box_hwd"]
    reference = np.load(PRE / "ct_preprocessed.npy")[0]
    assert prepared.volume.shape == reference.shape
    np.testing.assert_allclose(prepared.volume, reference, atol=1e-5, rtol=0)
    assert boxes(tiles(prepared.volume.shape)) == meta["tiles_288x288x96_y1y2_x1x2_z1z2"]
    assert boxes(tiles(prepared.volume.shape, (128, 96, 64))) == meta["tiles_128x96x64_y1y2_x1x2_z1z2"]


def test_mr_preprocessing_matches_reference_up_to_float32_noise_row():
    meta = META["mr"]
    prepared = prepare(load_scan(PRE / "mr_raw.nii.gz", modality="mr"))
    assert list(prepared.spacing.target.shape) == meta["after_orientation_spacing_shape"]
    np.testing.assert_allclose(prepared.spacing.target.affine, meta["after_orientation_spacing_affine"], atol=1e-4)
    reference = np.load(PRE / "mr_preprocessed.npy")[0]
    ref_lo = [lo for lo, _ in meta["crop_foreground_box_hwd"]]
    # MONAI's float32 grid sampling gives the background row y=8 a tiny positive value, so its
    # crop starts one row earlier; that row is constant background in the reference output.
    assert list(prepared.crop.lo) == [ref_lo[0], ref_lo[1] + 1, ref_lo[2]]
    assert [hi for _, hi in meta["crop_foreground_box_hwd"]] == list(prepared.crop.hi)
    assert np.ptp(reference[:, 0, :]) == 0
    # With the reference's box, resampling and normalisation agree to float32 precision.
    from prosector.geometry import resample_onto
    from prosector.models.sat.preprocess import normalise

    scan = load_scan(PRE / "mr_raw.nii.gz", modality="mr")
    ras = prepared.orientation.forward(scan.data.astype(np.float32))
    resampled = resample_onto(ras, prepared.spacing.source, prepared.spacing.target, order=1, edge="nearest")
    box = tuple(slice(lo, hi) for lo, hi in meta["crop_foreground_box_hwd"])
    np.testing.assert_allclose(normalise(resampled[box], "mr"), reference, atol=1e-5, rtol=0)
    assert abs(prepared.volume.mean()) < 1e-5 and abs(prepared.volume.std() - 1) < 1e-5


def test_gaussian_weights_are_bit_identical_to_reference():
    g = gaussian_weights()
    assert g.dtype == np.float16 and g.shape == tuple(SLIDING["shape"])
    assert hashlib.sha256(g.tobytes()).hexdigest() == SLIDING["sha256_of_float16_C_order_bytes"]
    assert float(g.min()) == SLIDING["min"] and float(g[144, 144, 48]) == 10.0


@pytest.mark.parametrize("shape", list(SLIDING["split_3d_examples_chwd_to_y1y2_x1x2_z1z2"]))
def test_tiles_match_reference_split(shape):
    dims = tuple(int(s) for s in shape.split("x"))
    assert boxes(tiles(dims)) == SLIDING["split_3d_examples_chwd_to_y1y2_x1x2_z1z2"][shape]


def test_2d_image_is_refused_with_one_line():
    from prosector.errors import InputError

    png = next((SHARED / "data" / "sam_med2d_demo").rglob("*.png"))
    scan = load_scan(png)
    with pytest.raises(InputError, match="3D"):
        prepare(scan)


@pytest.mark.parametrize("name", ["ct_raw.nii.gz", "mr_raw.nii.gz"])
def test_fast_way_back_equals_full_resampling(name):
    """The separable map back onto the scan's RAS grid gives scipy's order-1 values exactly."""
    from prosector.geometry import resample_onto
    from prosector.models.sat.preprocess import separable_linear

    prepared = prepare(load_scan(PRE / name))
    prob = np.random.default_rng(0).random(prepared.grid.shape).astype(np.float32)
    full = resample_onto(prob, prepared.crop.target, prepared.orientation.target, order=1, edge="constant")
    a = np.linalg.inv(prepared.crop.target.affine) @ prepared.orientation.target.affine
    fast = separable_linear(prob, np.diag(a)[:3], a[:3, 3], prepared.orientation.target.shape)
    np.testing.assert_allclose(fast, full, atol=1e-6, rtol=0)
    assert ((fast > 0) == (full > 0)).all()
    torch = pytest.importorskip("torch")
    from prosector.models.sat.preprocess import separable_linear_torch

    # The GPU path (here run on CPU tensors) is the same arithmetic in torch.
    on_device = separable_linear_torch(torch.from_numpy(prob), np.diag(a)[:3], a[:3, 3], prepared.orientation.target.shape)
    np.testing.assert_allclose(on_device.numpy(), full, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(
        prepared.to_scan_grid(torch.from_numpy(prob)), prepared.to_scan_grid(prob)
    )
