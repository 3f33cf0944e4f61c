"""Scans in every common format, read on their own grid; bad files give one clear line and exit 2."""
from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from prosector.errors import InputError
from prosector.io import load_scan
from tests.conftest import DATA, TOTALSEG
from tests.helpers import assert_clean_failure, cli

CT = TOTALSEG / "example_ct.nii.gz"
MR = TOTALSEG / "example_mr_sm.nii.gz"


def test_nifti_ct_keeps_its_grid_and_is_recognised_as_ct():
    scan = load_scan(CT)
    img = nib.load(CT)
    assert scan.shape == (122, 101, 112)
    assert np.array_equal(scan.affine, img.affine)
    assert np.array_equal(scan.data, np.asanyarray(img.dataobj))
    assert scan.orientation == "RAS" and scan.spacing == (3.0, 3.0, 3.0)
    assert scan.modality == "ct" and scan.warnings == []


def test_mr_is_not_mistaken_for_ct_and_modality_can_be_given():
    assert load_scan(MR).modality == "unknown"
    scan = load_scan(MR, modality="mr")
    assert scan.modality == "mr" and scan.orientation == "LPS"


def test_ct_flag_on_non_hu_intensities_warns():
    scan = load_scan(MR, modality="ct")
    assert any("Hounsfield" in w for w in scan.warnings)


def test_nrrd_matches_simpleitk_world_positions():
    path = DATA / "pyradiomics" / "brain1_image.nrrd"
    scan = load_scan(path)
    image = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(image)
    for ijk in [(0, 0, 0), (10, 200, 7), (255, 3, 24)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk)))
        ras = scan.grid.world(np.array(ijk))
        assert np.allclose(ras, lps * [-1, -1, 1], atol=1e-4)
        assert scan.data[ijk] == arr[ijk[2], ijk[1], ijk[0]]


def test_mgz_reads_freesurfer_orientation():
    scan = load_scan(DATA / "niivue_demo" / "norm.mgz", modality="mr")
    assert scan.shape == (256, 256, 256)
    assert scan.orientation == "LIA"


def test_png_is_flagged_2d_and_refused_where_3d_is_required():
    png = sorted((DATA / "sam_med2d_demo" / "images").glob("*.png"))[0]
    scan = load_scan(png)
    assert scan.is_2d and scan.shape[2] == 1
    with pytest.raises(InputError, match="2D image"):
        load_scan(png, require_3d=True)


def test_unknown_modality_argument_is_refused():
    with pytest.raises(InputError, match="unknown modality"):
        load_scan(CT, modality="xr")


# --- bad input through the CLI: one line, exit 2, no traceback ---------------------------------

def test_truncated_gzip(tmp_path):
    broken = tmp_path / "truncated.nii.gz"
    broken.write_bytes(CT.read_bytes()[: CT.stat().st_size // 2])
    run = cli("info", broken)
    assert_clean_failure(run, "truncated.nii.gz", "truncated or corrupt")


def test_text_file_named_nifti(tmp_path):
    fake = tmp_path / "notes.nii.gz"
    with gzip.open(fake, "wt") as handle:
        handle.write("this is not an image\n" * 50)
    assert_clean_failure(cli("info", fake), "notes.nii.gz", "not a readable nifti")
    plain = tmp_path / "plain.nii.gz"
    plain.write_text("hello")
    assert_clean_failure(cli("info", plain), "plain.nii.gz")


def test_nan_voxels(tmp_path):
    data = np.zeros((8, 8, 8), dtype=np.float32)
    data[2, 3, 4] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    assert_clean_failure(cli("info", path), "nan.nii.gz", "NaN")


def test_singular_affine(tmp_path):
    affine = np.eye(4)
    affine[2, 2] = 0.0
    img = nib.Nifti1Image(np.zeros((8, 8, 8), dtype=np.int16), None)
    img.set_sform(affine, code=2)  # a qform cannot even hold a singular matrix
    path = tmp_path / "singular.nii.gz"
    nib.save(img, str(path))
    assert_clean_failure(cli("info", path), "singular.nii.gz", "singular")


def test_png_where_3d_scan_is_required(tmp_path):
    png = sorted((DATA / "sam_med2d_demo" / "images").glob("*.png"))[0]
    out = tmp_path / "out"
    run = cli("import-seg", png, TOTALSEG / "example_seg_fast", "-o", out)
    assert_clean_failure(run, png.name, "2D image")
    assert not out.exists()


def test_missing_file_and_unknown_type(tmp_path):
    assert_clean_failure(cli("info", tmp_path / "nope.nii.gz"), "no such file")
    odd = tmp_path / "scan.xyz"
    odd.write_text("x")
    assert_clean_failure(cli("info", odd), "unrecognised file type")


def test_info_json_and_version():
    import json

    run = cli("info", CT, "--json")
    assert run.code == 0, run.err
    info = json.loads(run.out)
    assert info["shape"] == [122, 101, 112] and info["modality"] == "ct"
    assert info["nifti"] == {"qform_code": 0, "sform_code": 2}
    assert info["intensity"]["min"] == float(np.min(nib.load(CT).dataobj))
    version = cli("--version")
    assert version.code == 0 and version.out.startswith("prosector ")


def test_uncompressed_copy_reads_identically(tmp_path):
    copy = tmp_path / "ct.nii"
    nib.save(nib.load(CT), str(copy))
    a, b = load_scan(CT), load_scan(copy)
    assert np.array_equal(a.data, b.data) and np.allclose(a.affine, b.affine)
    shutil.rmtree(tmp_path)
