"""The slice viewer: radiological orientation on real CT, whatever the file's axis order."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from prosector.io import load_scan
from prosector.mask import Mask
from prosector.scan import Scan
from prosector.ui.viewer import EDGE_LABELS, PALETTE, SliceViewer, legend_html

from conftest import TOTALSEG

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"   # 9 = adrenal_gland_left, 5 = liver


@pytest.fixture(scope="module")
def ct_and_labels():
    scan = load_scan(CT)
    labels = np.asarray(nib.load(SEG).dataobj).astype(np.int16)
    return scan, labels


def _colour_columns(image, colour) -> np.ndarray:
    pixels = np.asarray(image).astype(int)
    hit = np.all(np.abs(pixels - np.asarray(colour)) <= 40, axis=2)
    return np.argwhere(hit)


def _axial_through(viewer: SliceViewer, name: str):
    point = viewer.structure_centre(name)
    return viewer.plane("axial", point[2], window=viewer.window("soft tissue"), opacity=1.0), point


def test_left_adrenal_shows_on_the_viewers_right_in_axial(ct_and_labels):
    scan, labels = ct_and_labels
    viewer = SliceViewer(scan)
    viewer.set_mask(Mask("adrenal_gland_left", labels == 9, "precomputed"), colour=PALETTE[0])
    image, _ = _axial_through(viewer, "adrenal_gland_left")
    hits = _colour_columns(image, PALETTE[0])
    assert len(hits) > 0
    # Patient's left on the viewer's right: the left adrenal (world x about -47 mm) lies right of centre.
    assert hits[:, 1].mean() > image.width / 2 + 10
    # The adrenal glands lie posterior to the liver's front: lower half is posterior in axial.
    assert hits[:, 0].mean() > image.height * 0.4


def test_liver_on_the_viewers_left_in_coronal_and_superior_is_up(ct_and_labels):
    scan, labels = ct_and_labels
    viewer = SliceViewer(scan)
    viewer.set_mask(Mask("liver", labels == 5, "precomputed"), colour=PALETTE[3])
    point = viewer.structure_centre("liver")
    image = viewer.plane("coronal", point[1], window=viewer.window("soft tissue"), opacity=1.0)
    hits = _colour_columns(image, PALETTE[3])
    assert hits[:, 1].mean() < image.width / 2          # the liver is on the patient's right
    assert hits[:, 0].mean() < image.height / 2         # and in the upper abdomen: superior up


def test_reordered_file_renders_the_same_picture(ct_and_labels):
    """An LPS, axis-swapped copy of the scan holds the same world: the viewer must show the same pixels."""
    scan, labels = ct_and_labels
    img = nib.Nifti1Image(np.asarray(scan.data), scan.affine)
    swap_and_flip = np.array([[1, -1], [0, -1], [2, 1]])   # RAS stored as P, L, S
    flipped = img.as_reoriented(swap_and_flip)
    lab = nib.Nifti1Image(labels, scan.affine).as_reoriented(swap_and_flip)
    other = Scan(np.asarray(flipped.dataobj), flipped.affine, "ct", scan.provenance)
    assert other.grid.orientation != scan.grid.orientation
    pictures = []
    for s, lab_data in ((scan, labels), (other, np.asarray(lab.dataobj))):
        viewer = SliceViewer(s)
        viewer.set_mask(Mask("adrenal_gland_left", lab_data == 9, "precomputed"), colour=PALETTE[0])
        pictures.append(np.asarray(viewer.render(viewer.structure_centre("adrenal_gland_left"))))
    assert pictures[0].shape == pictures[1].shape
    assert np.array_equal(pictures[0], pictures[1])


def test_windows_and_markers(ct_and_labels):
    scan, _ = ct_and_labels
    viewer = SliceViewer(scan)
    assert viewer.window("lung") == (-1350.0, 150.0)
    assert viewer.window("soft tissue", level=50, width=100) == (0.0, 100.0)
    sheet = viewer.render(viewer.centre())
    assert sheet.mode == "RGB" and sheet.width > sheet.height
    # The marker colour is drawn (letters) on every panel's edges.
    assert _colour_columns(sheet, (255, 200, 0)).shape[0] > 20
    assert set(EDGE_LABELS["axial"]) == {"A", "P", "R", "L"}


def test_mask_off_grid_is_refused_and_legend_names_structures(ct_and_labels):
    scan, labels = ct_and_labels
    viewer = SliceViewer(scan)
    with pytest.raises(ValueError):
        viewer.set_mask(Mask("liver", np.zeros((3, 3, 3), bool), "precomputed"))
    viewer.set_mask(Mask("liver", labels == 5, "precomputed", label="liver <b>"))
    html = legend_html(viewer)
    assert "liver &lt;b&gt;" in html and "rgb(" in html
    assert viewer.structure_centre("nothing") is None


def test_lps_mr_shows_the_liver_on_the_viewers_left_and_anterior_up():
    scan = load_scan(TOTALSEG / "example_mr_sm.nii.gz")
    assert scan.grid.orientation == "LPS"
    labels = np.asarray(nib.load(TOTALSEG / "example_seg_roi_subset_mr.nii.gz").dataobj)
    viewer = SliceViewer(scan)
    viewer.set_mask(Mask("liver", labels > 0, "precomputed"), colour=PALETTE[3])
    image, _ = _axial_through(viewer, "liver")
    hits = _colour_columns(image, PALETTE[3])
    assert hits[:, 1].mean() < image.width / 2
    # MR has no HU: the window comes from the scan's own percentiles.
    low, high = viewer.window("soft tissue")
    assert low < high and (low, high) != (-160.0, 240.0)
