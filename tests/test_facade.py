"""`Prosector`, the Python API: typed results on a real CT with its TotalSegmentator segmentation."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from prosector.errors import InputError
from prosector.facade import Prosector

from conftest import TOTALSEG

CT = TOTALSEG / "example_ct_sm.nii.gz"
SEG = TOTALSEG / "example_seg_fast"
STATS = json.loads((SEG / "statistics.json").read_text())


@pytest.fixture(scope="module")
def left_adrenal():
    return Prosector().segment(CT, "left adrenal gland", seg=SEG)


def test_segment_returns_the_mask_on_the_scans_grid_with_its_numbers(left_adrenal):
    structure = left_adrenal["adrenal_gland_left"]
    assert len(left_adrenal) == 1 and structure.engine == "precomputed"
    reference = nib.load(SEG / "adrenal_gland_left.nii.gz")
    assert np.array_equal(structure.data, np.asarray(reference.dataobj) > 0)
    assert np.allclose(structure.affine, reference.affine)
    assert structure.volume_mm3 == pytest.approx(STATS["adrenal_gland_left"]["volume"], rel=1e-6)
    assert structure.mean_intensity == pytest.approx(STATS["adrenal_gland_left"]["intensity"], abs=0.01)
    # The patient's left is world -x (RAS+): the left adrenal lies left of the midline.
    assert structure.measurements.centroid_world_mm[0] < -20


def test_nifti_round_trip(left_adrenal, tmp_path):
    structure = left_adrenal["adrenal_gland_left"]
    path = tmp_path / "adrenal.nii.gz"
    nib.save(structure.nifti(), path)
    back = nib.load(path)
    assert np.array_equal(np.asarray(back.dataobj) > 0, structure.data)
    assert np.allclose(back.affine, structure.affine)


def test_resolution_is_reported_and_unknown_words_refused(left_adrenal):
    assert [r["id"] for r in left_adrenal.resolved] == ["adrenal_gland_left"]
    with pytest.raises(InputError, match="zorblat"):
        Prosector().segment(CT, "zorblat gland", seg=SEG)
    with pytest.raises(KeyError):
        left_adrenal["liver"]


def test_segment_writes_files_when_asked(tmp_path):
    result = Prosector().segment(CT, "spleen", seg=SEG, out_dir=tmp_path / "out")
    assert (tmp_path / "out" / "spleen.nii.gz").is_file()
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["spleen"]["volume"] == pytest.approx(STATS["spleen"]["volume"], rel=1e-6)
    assert str(tmp_path / "out" / "spleen.nii.gz") in result.files


def test_ask_answers_from_the_mask_with_evidence():
    answer = Prosector().ask(CT, "how big is the spleen?", seg=SEG)
    assert answer.error is None
    assert f"{STATS['spleen']['volume'] / 1000:.1f} mL" in answer.text
    assert [s.id for s in answer.structures] == ["spleen"]
    spleen = answer.structures[0]
    assert spleen.volume_mm3 == pytest.approx(STATS["spleen"]["volume"], rel=1e-6)
    assert spleen.data.shape == nib.load(CT).shape and np.allclose(spleen.affine, nib.load(CT).affine)
    assert answer.evidence and answer.evidence[0]["structures"] == ["spleen"]


def test_ask_about_nothing_known_says_so():
    answer = Prosector().ask(CT, "how big is the zorblat?", seg=SEG)
    assert answer.error and answer.structures == []


def test_report_sentences_rest_on_returned_structures():
    report = Prosector().report(CT, region="abdomen", seg=SEG)
    assert report.markdown.strip() and report.sentences
    ids = {s.id for s in report.structures}
    for sentence in report.sentences:
        assert set(sentence["structures"]) <= ids
    liver = next(s for s in report.structures if s.id == "liver")
    assert liver.volume_mm3 == pytest.approx(STATS["liver"]["volume"], rel=1e-6)
