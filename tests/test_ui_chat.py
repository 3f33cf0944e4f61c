"""The chat app's per-tab logic (no browser): loading, bad input, one request at a time, downloads."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from prosector.errors import InputError
from prosector.ui.chat_session import Busy, ChatSession
from prosector.ui.paths import AllowedFolders

from conftest import DATA, TOTALSEG

CT = TOTALSEG / "example_ct_sm.nii.gz"
SEG = TOTALSEG / "example_seg_fast"
STATS = json.loads((SEG / "statistics.json").read_text())


@pytest.fixture(scope="module")
def allowed(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("uploads")
    return AllowedFolders([DATA, scratch]), scratch


@pytest.fixture(scope="module")
def loaded(allowed):
    folders, _ = allowed
    chat = ChatSession(folders)
    status = chat.load(scan_path=str(CT), seg_path=str(SEG))
    return chat, status


def test_a_question_before_any_scan_is_a_clear_message(allowed):
    with pytest.raises(InputError, match="load a scan first"):
        ChatSession(allowed[0]).ask("how big is the liver?")


def test_load_by_server_path_then_ask(loaded):
    chat, status = loaded
    assert "example_ct_sm.nii.gz" in status and "CT" in status and "122x101x30" in status
    reply = chat.ask("segment the liver and tell me its volume")
    assert reply.error is None and reply.mask_ids == ["liver"]
    assert f"{STATS['liver']['volume'] / 1000:.1f} mL" in reply.text
    # The viewer jumped into the liver and paints it.
    assert "liver" in chat.viewer.overlays
    assert chat.viewer.overlays["liver"].data[chat.point]
    rows = chat.structure_rows()
    assert rows[0][0] == "liver" and rows[0][1] == pytest.approx(STATS["liver"]["volume"] / 1000, abs=0.01)
    assert "lower bound" in rows[0][5]


def test_downloads_hold_the_mask_statistics_report_and_log(loaded):
    chat, _ = loaded
    chat.draft_report("abdomen")
    files = {Path(p).name: Path(p) for p in chat.downloads()}
    assert {"liver.nii.gz", "segmentation.nii.gz", "statistics.json", "report.md", "session_log.jsonl"} <= set(files)
    assert np.array_equal(np.asarray(nib.load(files["liver.nii.gz"]).dataobj) > 0,
                          np.asarray(nib.load(SEG / "liver.nii.gz").dataobj) > 0)
    stats = json.loads(files["statistics.json"].read_text())
    assert stats["liver"]["volume"] == pytest.approx(STATS["liver"]["volume"], rel=1e-6)
    assert "Liver" in files["report.md"].read_text()
    assert any('"user"' in line for line in files["session_log.jsonl"].read_text().splitlines())


def test_selecting_a_report_sentence_highlights_its_evidence(loaded):
    chat, _ = loaded
    if chat.report is None:
        chat.draft_report("abdomen")
    index = next(i for i, s in enumerate(chat.report.sentences) if s["structures"] == ["spleen"])
    text = chat.focus_sentence(index)
    assert "Spleen" in text
    assert chat.highlight == {"spleen"}
    assert chat.viewer.overlays["spleen"].data[chat.point]


def test_two_requests_at_once_in_one_tab(loaded):
    chat, _ = loaded
    chat._lock.acquire()
    try:
        with pytest.raises(Busy, match="still working"):
            chat.ask("how big is the spleen?")
    finally:
        chat._lock.release()
    assert chat.ask("how big is the spleen?").error is None   # nothing lost: the tab answers again


def test_bad_uploads_are_refused_and_the_loaded_scan_stays(loaded, allowed, tmp_path):
    chat, _ = loaded
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    with pytest.raises(InputError, match="is not a scan"):
        chat.load(scan_upload=str(text_file))
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(b"\x00" * 2048)
    with pytest.raises(InputError):
        chat.load(scan_upload=str(fake))
    with pytest.raises(InputError, match="outside the allowed folders"):
        chat.load(scan_path="/etc/hostname")
    small_limit = ChatSession(allowed[0], max_upload_mb=0.01)
    with pytest.raises(InputError, match="over this server's limit"):
        small_limit.load(scan_upload=str(CT))
    # Still the same scan and masks after every refusal.
    assert chat.session.scan.shape[:3] == (122, 101, 30) and "liver" in chat.session.masks


def test_segmentation_as_a_zip_of_masks(allowed, tmp_path):
    archive = tmp_path / "seg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("spleen", "liver"):
            zf.write(SEG / f"{name}.nii.gz", f"example_seg_fast/{name}.nii.gz")
    chat = ChatSession(allowed[0])
    chat.load(scan_upload=str(CT), seg_upload=str(archive))
    reply = chat.ask("how big is the spleen?")
    assert f"{STATS['spleen']['volume'] / 1000:.1f} mL" in reply.text

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.nii.gz", b"x")
    with pytest.raises(InputError, match="unsafe entry"):
        chat.load(scan_upload=str(CT), seg_upload=str(evil))


def test_dicom_zip_with_two_series_says_which_it_chose(allowed, tmp_path):
    """Three slices of one series beside two slices relabelled as another: the larger is taken, and named."""
    source = sorted((DATA / "dcmqi_ct3slice" / "ct-3slice").glob("*.dcm"))
    archive = tmp_path / "two_series.zip"
    other_uid = pydicom.uid.generate_uid()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in source:
            zf.write(path, f"a/{path.name}")
        for path in source[:2]:
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = other_uid
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            copy = tmp_path / f"b_{path.name}"
            ds.save_as(copy)
            zf.write(copy, f"b/{path.name}")
    chat = ChatSession(allowed[0])
    status = chat.load(scan_upload=str(archive))
    assert "2 series" in status and "largest" in status
    assert chat.session.scan.shape[2] == 3
    chosen = chat.session.scan.provenance.series_uid
    assert chosen != other_uid
    status = chat.load(scan_upload=str(archive), series_uid=other_uid)
    assert chat.session.scan.provenance.series_uid == other_uid
