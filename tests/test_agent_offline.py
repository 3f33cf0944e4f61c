"""The offline planner end to end on real TotalSegmentator masks (precomputed engine).

Every expected number is computed here from the label volumes with nibabel and numpy, independently
of prosector.measure, and compared at the precision the answer prints.
"""
from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest

from conftest import TOTALSEG
from prosector.agent import Agent, Session

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"
CT_SM = TOTALSEG / "example_ct_sm.nii.gz"
SEG_SM = TOTALSEG / "example_seg_fast"
MR = TOTALSEG / "example_mr_sm.nii.gz"
SEG_MR = TOTALSEG / "example_seg_mr.nii.gz"
CLASS_MAPS = TOTALSEG / "labelmaps" / "class_map_head.json"
EDGE = 3  # voxels: within this of the array's edge a structure may continue outside the scan


class Truth:
    """Masks and intensities read straight from the files: the test's own arithmetic."""

    def __init__(self, image, labels: dict[str, np.ndarray]):
        img = nib.load(str(image))
        self.ct = np.asarray(img.dataobj, dtype=np.float64)
        self.affine = img.affine
        self.voxel_ml = abs(np.linalg.det(img.affine[:3, :3])) / 1000.0
        self.labels = labels

    def mask(self, name: str) -> np.ndarray:
        return self.labels[name]

    def volume(self, name: str) -> str:
        return f"{self.mask(name).sum() * self.voxel_ml:.1f}"

    def mean(self, name: str) -> str:
        return f"{self.ct[self.mask(name)].mean():.1f}"

    def cut(self, name: str) -> bool:
        ijk = np.argwhere(self.mask(name))
        shape = np.array(self.mask(name).shape)
        return bool((ijk.min(0) < EDGE).any() or (ijk.max(0) > shape - 1 - EDGE).any())

    def extent_z(self, name: str) -> str:
        ijk = np.argwhere(self.mask(name))
        z = (ijk @ self.affine[:3, :3].T + self.affine[:3, 3])[:, 2]
        return f"{z.max() - z.min() + abs(self.affine[2, :3]).sum():.1f}"


def _multilabel(path, task: str) -> dict[str, np.ndarray]:
    names = json.loads(CLASS_MAPS.read_text())[task]
    data = np.asarray(nib.load(str(path)).dataobj).astype(int)
    return {name: data == int(k) for k, name in names.items()}


@pytest.fixture(scope="module")
def truth() -> Truth:
    return Truth(CT, _multilabel(SEG, "total"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Agent:
    session = Session.open("offline-ct")
    session.load_scan(CT, seg=SEG)
    return Agent(session, llm="offline")


def numbers(text: str) -> list[str]:
    return re.findall(r"(?<![A-Za-z\d.])-?\d+\.\d+", text)


def test_volume_with_reference_range_and_border(agent, truth):
    reply = agent.ask("How big is the spleen?")
    assert reply.error is None and reply.mask_ids == ["spleen"]
    assert truth.cut("spleen"), "the example CT cuts the spleen at its top: the answer must say 'at least'"
    assert f"at least {truth.volume('spleen')} mL" in reply.text
    assert "107.2-314.5 mL" in reply.text and "Prassopoulos" in reply.text
    assert "cannot show whether" in reply.text  # a lower bound within range says nothing about normality
    assert any("lower bound" in w for w in reply.warnings)
    assert reply.evidence[0]["numbers"][0]["value"] == float(truth.volume("spleen"))


def test_compare_kidneys(agent, truth):
    reply = agent.ask("Which kidney is bigger?")
    right, left = truth.volume("kidney_right"), truth.volume("kidney_left")
    big, small = ("right", "left") if float(right) > float(left) else ("left", "right")
    vb, vs = (right, left) if big == "right" else (left, right)
    assert f"The {big} kidney ({vb} mL) is larger than the {small} kidney ({vs} mL)" in reply.text
    assert f"{float(vb) - float(vs):.1f} mL more" in reply.text
    assert f"a ratio of {float(vb) / float(vs):.2f}" in reply.text
    assert set(reply.mask_ids) == {"kidney_left", "kidney_right"}


def test_presence_outside_field_of_view(agent, truth):
    assert not truth.mask("brain").any()
    reply = agent.ask("Is the brain in the scan?")
    assert reply.text.startswith("No:") and "outside this scan's field of view" in reply.text
    assert numbers(reply.text) == []
    present = agent.ask("Is the gallbladder visible?")
    assert present.text.startswith("Yes:") and truth.volume("gallbladder") in present.text


def test_count_lumbar_vertebrae(agent, truth):
    levels = [f"L{n}" for n in range(1, 6)]
    seen = [lvl for lvl in levels if truth.mask(f"vertebrae_{lvl}").any()]
    reply = agent.ask("How many lumbar vertebrae are visible?")
    assert reply.text.startswith(f"{len(seen)} of the 5 lumbar vertebrae are visible: {', '.join(seen)}.")


def test_count_thoracic_vertebrae_on_the_cropped_scan(tmp_path):
    labels = {p.name.removesuffix(".nii.gz"): np.asarray(nib.load(str(p)).dataobj) > 0 for p in SEG_SM.glob("vertebrae_T*.nii.gz")}
    seen = [f"T{n}" for n in range(1, 13) if labels[f"vertebrae_T{n}"].any()]
    session = Session.open("offline-ct-sm")
    session.load_scan(CT_SM, seg=SEG_SM)
    reply = Agent(session, llm="offline").ask("how many thoracic vertebrae are visible?")
    assert f"{len(seen)} of the 12 thoracic vertebrae are visible: {', '.join(seen)}." in reply.text
    partial = [t for t in seen if Truth(CT_SM, {t: labels[f'vertebrae_{t}']}).cut(t)]
    if partial:
        assert f"Of these, {', '.join(partial)} touch the scan border" in reply.text


def test_density_liver_against_spleen(agent, truth):
    reply = agent.ask("What is the liver attenuation compared with the spleen?")
    liver, spleen = truth.mean("liver"), truth.mean("spleen")
    assert f"mean attenuation of the liver is {liver} HU" in reply.text
    assert f"mean attenuation of the spleen is {spleen} HU" in reply.text
    difference = f"{float(liver) - float(spleen):.1f}"
    assert f"Liver minus spleen attenuation is {difference} HU" in reply.text
    verdict = "suggests hepatic steatosis" if float(difference) < -10 else "not below the -10 HU"
    assert verdict in reply.text
    assert "Park SH" in reply.text and "unenhanced" in reply.text  # criterion, source and its condition
    assert {"liver", "spleen"} <= set(reply.mask_ids)


def test_extent_whole_and_cut(agent, truth):
    assert not truth.cut("gallbladder") and truth.cut("liver")
    whole = agent.ask("How long is the gallbladder?")
    assert f"The gallbladder spans {truth.extent_z('gallbladder')} mm craniocaudally" in whole.text
    cut = agent.ask("what is the craniocaudal extent of the liver?")
    assert f"spans at least {truth.extent_z('liver')} mm craniocaudally" in cut.text
    assert "touches the scan border" in cut.text


def test_enlarged_without_reference_is_said_plainly(agent, truth):
    reply = agent.ask("Is the urinary bladder enlarged?")
    assert truth.volume("urinary_bladder") in reply.text
    assert "no adult volume range" in reply.text


def test_segment_left_adrenal_lies_left_on_the_grid(agent, truth):
    reply = agent.ask("segment the left adrenal gland")
    assert reply.mask_ids == ["adrenal_gland_left"]
    mask = agent.session.masks["adrenal_gland_left"]
    assert mask.data.shape == truth.ct.shape and np.array_equal(mask.data, truth.mask("adrenal_gland_left"))
    centre_x = (np.argwhere(mask.data).mean(0) @ truth.affine[:3, :3].T + truth.affine[:3, 3])[0]
    assert centre_x < -30  # patient's left is world -x (RAS+)
    assert truth.volume("adrenal_gland_left") in reply.text


def test_report_through_the_planner(agent, truth):
    reply = agent.ask("draft the abdominal findings")
    assert reply.report is not None and reply.report.region == "abdomen"
    assert f"right {truth.volume('kidney_right')} mL, left {truth.volume('kidney_left')} mL" in reply.text


@pytest.mark.parametrize("question, expect", [
    ("How big is the tumour?", "I cannot answer that"),
    ("Wie groß ist die Milz?", "English"),
    ("", "Please ask"),
])
def test_bad_requests_get_an_honest_sentence_and_no_number(agent, question, expect):
    reply = agent.ask(question)
    assert reply.error and expect in reply.text
    assert reply.mask_ids == [] and numbers(reply.text) == []
    assert reply.exit_code == 2


def test_structure_no_engine_segments_here(agent):
    reply = agent.ask("segment the hippocampus")
    assert reply.error and "cannot segment" in reply.text and reply.mask_ids == []
    assert numbers(reply.text) == []


def test_mr_intensity_is_not_hounsfield():
    session = Session.open("offline-mr")
    session.load_scan(MR, seg=SEG_MR, class_map=f"{CLASS_MAPS}#total_mr")
    reply = Agent(session, llm="offline").ask("what is the density of the liver?")
    labels = _multilabel(SEG_MR, "total_mr")
    truth = Truth(MR, labels)
    assert f"mean signal of the liver is {truth.mean('liver')} a.u." in reply.text
    assert "HU" not in reply.text and "steatosis" not in reply.text



def test_export_through_the_planner(agent, truth):
    reply = agent.ask("export the kidneys as nifti")
    assert reply.error is None and "kidney_left.nii.gz" in reply.text
    folder = reply.text.rsplit(" to ", 1)[1].rstrip(".")
    exported = nib.load(f"{folder}/kidney_right.nii.gz")
    assert np.array_equal(np.asarray(exported.dataobj) > 0, truth.mask("kidney_right"))
    assert np.allclose(exported.affine, truth.affine)


def test_enlargement_threshold_from_the_tree(agent, truth):
    reply = agent.ask("Is the prostate enlarged?")
    volume = truth.volume("prostate")
    assert volume in reply.text and "30.0 mL" in reply.text and "Roehrborn" in reply.text
    if truth.cut("prostate") and float(volume) <= 30:
        assert "cannot show whether" in reply.text
    else:
        assert ("is enlarged" in reply.text) == (float(volume) > 30)


def test_count_over_a_side(agent, truth):
    seen = [n for n in range(1, 13) if truth.mask(f"rib_left_{n}").any()]
    reply = agent.ask("how many ribs on the left are visible?")
    assert reply.text.startswith(f"{len(seen)} of the 12 left ribs are visible")
