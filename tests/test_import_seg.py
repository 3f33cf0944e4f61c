"""`prosector import-seg`: existing segmentations onto the scan's exact grid, measured and exported."""
from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from prosector.api import import_segmentation
from prosector.exports.nifti import read_label_table
from prosector.io import load_scan
from tests.conftest import TOTALSEG
from tests.helpers import assert_clean_failure, cli

CT_SM = TOTALSEG / "example_ct_sm.nii.gz"
FAST = TOTALSEG / "example_seg_fast"
CLASS_MAPS = TOTALSEG / "labelmaps" / "class_map_head.json"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("import") / "out"
    run = cli("import-seg", CT_SM, FAST, "--statistics", "-o", out, "--report", out.parent / "run_copy.json")
    assert run.code == 0, run.err
    return out, run


def test_statistics_match_totalsegmentator(imported):
    out, _ = imported
    ours = json.loads((out / "statistics.json").read_text())
    theirs = json.loads((FAST / "statistics.json").read_text())
    assert set(ours) == set(theirs) and len(ours) == 117
    present = [name for name, v in theirs.items() if v["volume"] > 0]
    assert len(present) > 30
    for name in present:
        assert ours[name]["volume"] == pytest.approx(theirs[name]["volume"], rel=0.005), name
        assert ours[name]["intensity"] == pytest.approx(theirs[name]["intensity"], abs=1.0), name
    for name in set(theirs) - set(present):
        assert ours[name]["volume"] == 0


def test_masks_lie_on_the_scans_exact_grid(imported):
    out, _ = imported
    scan_img = nib.load(CT_SM)
    for name in ("liver", "vertebrae_L1", "brain"):
        img = nib.load(out / f"{name}.nii.gz")
        assert img.shape == scan_img.shape
        assert np.array_equal(img.affine, scan_img.affine)
        for form in ("get_qform", "get_sform"):
            a, a_code = getattr(img.header, form)(coded=True)
            b, b_code = getattr(scan_img.header, form)(coded=True)
            assert a_code == b_code and (a is None and b is None or np.allclose(a, b))
        source = np.asanyarray(nib.load(FAST / f"{name}.nii.gz").dataobj) > 0
        assert np.array_equal(np.asanyarray(img.dataobj) > 0, source)
    assert not np.asanyarray(nib.load(out / "brain.nii.gz").dataobj).any()  # outside the field of view, kept


def test_multilabel_names_in_header_and_sidecar(imported):
    out, _ = imported
    img = nib.load(out / "segmentation.nii.gz")
    table = read_label_table(img)
    sidecar = json.loads((out / "segmentation.json").read_text())
    assert {int(k): v for k, v in sidecar.items()} == table
    labels = np.asanyarray(img.dataobj)
    spleen_key = next(k for k, v in table.items() if v == "spleen")
    spleen = np.asanyarray(nib.load(FAST / "spleen.nii.gz").dataobj) > 0
    assert np.array_equal(labels == spleen_key, spleen)
    # the XML is the Caret label table TotalSegmentator reads: Label elements with Key attributes
    raw = img.header.extensions[0].get_content()
    assert b"<LabelTable>" in raw and b'Key="1"' in raw


def test_measurements_and_report(imported):
    out, run = imported
    ext = json.loads((out / "measurements.json").read_text())
    liver = ext["structures"]["liver"]
    mask = np.asanyarray(nib.load(FAST / "liver.nii.gz").dataobj) > 0
    affine = nib.load(CT_SM).affine
    ijk = np.argwhere(mask)
    assert liver["voxel_count"] == len(ijk)
    assert liver["volume_ml"] == pytest.approx(len(ijk) * 27 / 1000)
    assert np.allclose(liver["centroid_world_mm"], (affine[:3, :3] @ ijk.mean(axis=0)) + affine[:3, 3])
    assert liver["touches_border"] is True and liver["intensity_unit"] == "HU"
    report = json.loads((out / "run.json").read_text())
    assert report["engine"]["name"] == "precomputed" and report["status"] == "ok"
    assert str(out / "statistics.json") in report["outputs"]
    assert json.loads((out.parent / "run_copy.json").read_text())["outputs"] == report["outputs"]
    assert "liver touches the scan border" in run.out


def test_multilabel_with_json_class_map(tmp_path):
    """An older multilabel without a label table, named by a TotalSegmentator map from JSON."""
    seg = TOTALSEG / "history" / "example_seg_v1fast_commit0effae9.nii.gz"
    flat = tmp_path / "v1.json"
    flat.write_text(json.dumps(json.loads(CLASS_MAPS.read_text())["total_v1"]))
    result = import_segmentation(TOTALSEG / "example_ct.nii.gz", seg, tmp_path / "a", class_map=flat)
    nested = import_segmentation(TOTALSEG / "example_ct.nii.gz", seg, tmp_path / "b",
                                 class_map=f"{CLASS_MAPS}#total_v1")
    names = {m.name: m for m in result.masks}
    assert len(names) == 104 and names["liver"].data.any()
    labels = np.asanyarray(nib.load(seg).dataobj)
    liver_key = next(int(k) for k, v in json.loads(flat.read_text()).items() if v == "liver")
    assert np.array_equal(names["liver"].data, labels == liver_key)
    assert [m.name for m in nested.masks] == [m.name for m in result.masks]


def test_mr_lps_multilabel_with_header_names(tmp_path):
    result = import_segmentation(TOTALSEG / "example_mr_sm.nii.gz", TOTALSEG / "example_seg_mr.nii.gz",
                                 tmp_path / "mr", modality="mr", statistics=True)
    present = {m.name for m in result.measurements if not m.empty}
    assert {"liver", "spleen", "kidney_left", "kidney_right"} <= present
    by_name = {m.name: m for m in result.measurements}
    assert by_name["kidney_left"].centroid_world_mm[0] < by_name["kidney_right"].centroid_world_mm[0]
    assert by_name["liver"].intensity_unit == "a.u."
    img = nib.load(tmp_path / "mr" / "liver.nii.gz")
    assert "".join(nib.aff2axcodes(img.affine)) == "LPS"


def test_unnamed_labels_are_named_honestly(tmp_path):
    scan = load_scan(CT_SM)
    labels = np.zeros(scan.shape, dtype=np.uint8)
    labels[10:20, 10:20, 5:10] = 3
    labels[40:50, 40:50, 5:10] = 7
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, scan.affine), str(path))
    result = import_segmentation(CT_SM, path, tmp_path / "o")
    assert [m.name for m in result.masks] == ["label_3", "label_7"]
    assert any("--class-map" in w for w in result.warnings)


def test_segmentation_on_another_grid_fails_cleanly(tmp_path):
    out = tmp_path / "out"
    run = cli("import-seg", TOTALSEG / "example_ct.nii.gz", FAST, "-o", out)
    assert_clean_failure(run, "different grid")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits; use a path under a file instead
            blocker = tmp_path / "file"
            blocker.write_text("x")
            target = blocker / "out"
        else:
            target = locked / "out"
        run = cli("import-seg", CT_SM, FAST, "-o", target)
        assert_clean_failure(run, "output")
    finally:
        locked.chmod(0o700)


def test_dicom_seg_needs_dicom_input(tmp_path):
    run = cli("import-seg", CT_SM, FAST, "--format", "dicom-seg", "-o", tmp_path / "o")
    assert_clean_failure(run, "DICOM SEG output needs a DICOM input")
    assert not (tmp_path / "o").exists()


def test_failure_midway_leaves_nothing_behind(tmp_path):
    """A broken mask file among good ones: the run fails and the output folder never appears."""
    folder = tmp_path / "seg"
    folder.mkdir()
    for name in ("liver", "spleen"):
        (folder / f"{name}.nii.gz").write_bytes((FAST / f"{name}.nii.gz").read_bytes())
    (folder / "zz_broken.nii.gz").write_bytes((FAST / "spleen.nii.gz").read_bytes()[:200])
    out = tmp_path / "out"
    run = cli("import-seg", CT_SM, folder, "--statistics", "-o", out)
    assert_clean_failure(run, "zz_broken.nii.gz")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg"]


DCMQI = TOTALSEG.parent / "dcmqi_ct3slice"


def test_dicom_info_and_seg_round_trip_through_the_cli(tmp_path):
    """The issue's DICOM checks, as a user runs them."""
    import SimpleITK as sitk

    info = cli("info", DCMQI / "ct-3slice", "--json")
    assert info.code == 0, info.err
    described = json.loads(info.out)
    assert described["shape"] == [512, 512, 3] and described["modality"] == "ct"
    assert described["dicom"]["series_instance_uid"] and described["dicom"]["instances"] == 3

    out = tmp_path / "liver"
    run = cli("import-seg", DCMQI / "ct-3slice", DCMQI / "liver.dcm", "-o", out)
    assert run.code == 0, run.err
    ours = np.asanyarray(nib.load(out / "liver.nii.gz").dataobj) > 0
    # the reference NRRD, put into our voxel order (i, j, k) by SimpleITK's own geometry
    ref_img = sitk.ReadImage(str(DCMQI / "liver_seg.nrrd"))
    reference = sitk.GetArrayFromImage(ref_img).transpose(2, 1, 0) > 0
    scan = load_scan(DCMQI / "ct-3slice")
    lps = np.array(ref_img.TransformIndexToPhysicalPoint((0, 0, 0)))
    assert np.allclose(scan.grid.world([0, 0, 0]), lps * [-1, -1, 1], atol=1e-3)
    dice = 2 * (ours & reference).sum() / (ours.sum() + reference.sum())
    assert dice >= 0.99

    # the DICOM SEG we wrote names the liver by its SNOMED CT code, from the anatomy tree
    import pydicom

    written = pydicom.dcmread(out / "segmentation.dcm")
    code = written.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("10200004", "SCT")

    # the DICOM SEG we wrote reads back to the same voxels
    again = tmp_path / "again"
    run = cli("import-seg", DCMQI / "ct-3slice", out / "segmentation.dcm", "-o", again)
    assert run.code == 0, run.err
    assert np.array_equal(np.asanyarray(nib.load(again / "liver.nii.gz").dataobj) > 0, ours)
