"""`prosector segment IMAGE TEXT`: words -> engine -> masks on the scan's grid, or an honest exit 2."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from prosector.api import segment
from tests.conftest import TOTALSEG
from tests.helpers import assert_clean_failure, cli

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"
CT_SM = TOTALSEG / "example_ct_sm.nii.gz"
FAST = TOTALSEG / "example_seg_fast"


def test_left_adrenal_from_an_existing_segmentation(tmp_path):
    out = tmp_path / "out"
    run = cli("segment", CT, "L adrenal", "--seg", SEG, "--statistics", "-o", out)
    assert run.code == 0, run.err
    assert "left adrenal gland [adrenal_gland_left]" in run.out and "engine precomputed" in run.out
    img = nib.load(out / "adrenal_gland_left.nii.gz")
    labels = np.asanyarray(nib.load(SEG).dataobj)
    assert np.array_equal(np.asanyarray(img.dataobj) > 0, labels == 9)  # 9 = adrenal_gland_left
    assert np.array_equal(img.affine, nib.load(CT).affine)
    stats = json.loads((out / "statistics.json").read_text())
    assert list(stats) == ["adrenal_gland_left"]
    assert stats["adrenal_gland_left"]["volume"] == pytest.approx((labels == 9).sum() * 27)
    report = json.loads((out / "run.json").read_text())
    choice = report["engine"]["plan"]["choices"][0]
    assert choice["engine"] == "precomputed" and choice["concept"] == "adrenal_gland_left"


def test_group_words_give_their_leaves(tmp_path):
    result = segment(CT, "both kidneys and the spleen", seg=SEG)
    assert [m.name for m in result.masks] == ["kidney_left", "kidney_right", "spleen"] or \
        sorted(m.name for m in result.masks) == ["kidney_left", "kidney_right", "spleen"]
    by = {m.name: m for m in result.measurements}
    assert by["kidney_left"].centroid_world_mm[0] < by["kidney_right"].centroid_world_mm[0]


def test_weight_free_lungs_by_the_classical_engine(tmp_path):
    out = tmp_path / "lungs"
    run = cli("segment", CT, "lungs", "-o", out)
    assert run.code == 0, run.err
    assert "engine classical" in run.out
    assert {p.name for p in out.glob("lung_*.nii.gz")} == {"lung_left.nii.gz", "lung_right.nii.gz"}


def test_unknown_words_exit_2_without_files(tmp_path):
    out = tmp_path / "out"
    run = cli("segment", CT, "the flux capacitor", "-o", out)
    assert_clean_failure(run, "cannot segment")
    assert not out.exists()


def test_structure_no_ready_engine_can_do(tmp_path):
    """No weights for TotalSegmentator here: the message names it and what it needs."""
    out = tmp_path / "out"
    run = cli("segment", CT, "left adrenal gland", "-o", out)
    assert_clean_failure(run, "cannot segment", "left adrenal gland", "totalseg")
    assert not out.exists()


def test_out_of_field_structure_is_said_after_segmentation(tmp_path):
    run = cli("segment", CT_SM, "brain", "--seg", FAST, "-o", tmp_path / "o")
    assert run.code == 0, run.err
    assert "brain is not in this scan's field of view" in run.out


def test_ct_given_as_mr_finds_no_ct_engine(tmp_path):
    run = cli("segment", CT, "lungs", "--modality", "mr", "-o", tmp_path / "o")
    assert_clean_failure(run, "cannot segment")
    assert not (tmp_path / "o").exists()


def test_bad_engine_and_precomputed_without_seg(tmp_path):
    run = cli("segment", CT, "liver", "--engine", "precomputed", "-o", tmp_path / "o")
    assert_clean_failure(run, "--seg")
    run = cli("segment", CT, "liver", "--engine", "magic", "-o", tmp_path / "o")
    assert run.code == 2 and "invalid choice" in run.err


def test_second_request_comes_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))  # an empty cache of its own
    from prosector.io import load_scan
    from prosector.segmenting import build_router, segment_scan

    scan = load_scan(CT)
    router = build_router()
    first = segment_scan(scan, "left lung and right lung", router=router)
    assert not any(log.cached for log in first.logs)
    second = segment_scan(scan, "right lung", router=build_router())
    assert all(log.cached for log in second.logs)
    assert np.array_equal(second.masks[0].data, first.masks[1].data)


def test_box_prompt_segments_with_medsam_and_refuses_boxes_outside(tmp_path):
    """A 2D CT slice with a box around the liver: LiteMedSAM draws it, the CLI writes it."""
    from PIL import Image

    demo = TOTALSEG.parent / "sam_med2d_demo"
    truth = np.asarray(Image.open(demo / "masks" / "amos_0006_90_liver_000.png")) > 0  # [row, column]
    rows, cols = np.nonzero(truth)
    box = f"{cols.min()},{rows.min()},{cols.max()},{rows.max()}"
    out = tmp_path / "box"
    run = cli("segment", demo / "images" / "amos_0006_90.png", "liver", "--box", box, "-o", out)
    assert run.code == 0, run.err
    assert "engine medsam" in run.out
    mask = np.asanyarray(nib.load(out / "liver.nii.gz").dataobj)[:, :, 0].T > 0  # stored as [x, y]
    assert mask.shape == truth.shape
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.8
    outside = cli("segment", CT, "liver", "--box", "10,10,500,20@5", "-o", tmp_path / "o2")
    assert_clean_failure(outside, "outside")
    assert not (tmp_path / "o2").exists()


def test_engine_failing_mid_run_leaves_a_failed_report_and_no_masks(tmp_path, monkeypatch):
    """The engine crashes after the plan is made: exit 1, the report says why, no output folder."""
    from prosector.models.classical import ClassicalEngine

    def crash(self, scan, structures, options=None):
        raise MemoryError("cannot allocate 3 GB")

    monkeypatch.setattr(ClassicalEngine, "segment", crash)
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))  # nothing cached from earlier tests
    out, report = tmp_path / "out", tmp_path / "run.json"
    from prosector.cli import main

    assert main(["segment", str(CT), "lungs", "-o", str(out), "--report", str(report)]) == 1
    assert not out.exists()
    failed = json.loads(report.read_text())
    assert failed["status"] == "failed"
    assert any("engine classical failed" in w and "MemoryError" in w for w in failed["warnings"])
