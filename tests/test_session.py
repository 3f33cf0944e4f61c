"""Workspaces: what a session computed survives a restart and is not computed again; writes are atomic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TOTALSEG
from prosector.agent import Agent, Session
from prosector.errors import InputError

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    return tmp_path


def test_resume_without_recomputing(home, monkeypatch):
    first = Session.open("resume")
    first.load_scan(CT, seg=SEG)
    answer = Agent(first, llm="offline").ask("which kidney is bigger?")
    assert answer.error is None
    stored = {k: v.copy() for k, v in ((i, m.data) for i, m in first.masks.items())}

    # A new process: no engine may run and nothing may be measured again.
    import prosector.agent.session as session_module

    def no_router(self):
        raise AssertionError("segmentation ran again")

    def no_measure(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(session_module.Session, "router", no_router)
    monkeypatch.setattr(session_module, "measure", no_measure)
    again = Session.open("resume")
    assert again.scan is not None and again.scan.shape == first.scan.shape
    assert set(again.masks) == set(stored)
    for mask_id, data in stored.items():
        assert np.array_equal(again.masks[mask_id].data, data)
    repeat = Agent(again, llm="offline").ask("which kidney is bigger?")
    assert repeat.text == answer.text
    kinds = [entry["kind"] for entry in again.history()]
    assert kinds.count("reply") == 2 and "segment" in kinds


def test_workspace_files_are_whole(home):
    session = Session.open("atomic")
    session.load_scan(CT, seg=SEG)
    Agent(session, llm="offline").ask("how big is the liver?")
    root = home / "workspaces" / "atomic"
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    state = json.loads((root / "state.json").read_text())
    assert state["scan"]["seg"] == str(SEG.resolve())
    assert "liver" in json.loads((root / "measurements.json").read_text())
    for line in (root / "log.jsonl").read_text().splitlines():
        json.loads(line)


def test_damaged_mask_file_is_recomputed_not_trusted(home):
    session = Session.open("damaged")
    session.load_scan(CT, seg=SEG)
    agent = Agent(session, llm="offline")
    before = agent.ask("how big is the spleen?").text
    (home / "workspaces" / "damaged" / "masks" / "spleen.npz").write_bytes(b"not a zip file")
    (home / "workspaces" / "damaged" / "measurements.json").unlink()
    fresh = Session.open("damaged")
    assert "spleen" not in fresh.masks
    assert Agent(fresh, llm="offline").ask("how big is the spleen?").text == before


def test_another_scan_starts_afresh(home):
    session = Session.open("switch")
    session.load_scan(CT, seg=SEG)
    Agent(session, llm="offline").ask("segment the spleen")
    assert "spleen" in session.masks
    session.load_scan(TOTALSEG / "example_ct_sm.nii.gz", seg=TOTALSEG / "example_seg_fast")
    assert session.masks == {} and session.measurements == {}


def test_bad_workspace_and_missing_inputs(home):
    with pytest.raises(InputError):
        Session.open("../escape")
    session = Session.open()
    with pytest.raises(InputError):
        session.load_scan(CT, seg=home / "missing_seg.nii.gz")
    reply = Agent(session, llm="offline").ask("how big is the spleen?")
    assert reply.error and "no scan is loaded" in reply.text


def test_cached_chat_turn_imports_no_torch(home):
    """A restarted process answering from stored masks loads no model framework (the chat path stays light)."""
    import subprocess
    import sys

    session = Session.open("light")
    session.load_scan(CT, seg=SEG)
    assert Agent(session, llm="offline").ask("which kidney is bigger?").error is None
    code = ("import sys; from prosector.agent import Agent, Session; "
            "r = Agent(Session.open('light'), llm='offline').ask('which kidney is bigger?'); "
            "assert r.error is None, r.error; "
            "print(sorted(m for m in ('torch', 'transformers', 'langchain_core', 'langgraph') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PROSECTOR_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_export_lies_on_the_scan_grid(home):
    import nibabel as nib

    session = Session.open("export")
    session.load_scan(CT, seg=SEG)
    files = session.export(["left kidney", "spleen"], ["nifti", "statistics"], home / "out")
    names = sorted(p.name for p in files)
    assert names == ["kidney_left.nii.gz", "measurements.json", "spleen.nii.gz", "statistics.json"]
    scan = nib.load(str(CT))
    kidney = nib.load(str(home / "out" / "kidney_left.nii.gz"))
    assert kidney.shape == scan.shape and np.allclose(kidney.affine, scan.affine)
    truth = np.asarray(nib.load(str(SEG)).dataobj) == 3  # total: 3 = kidney_left
    assert np.array_equal(np.asarray(kidney.dataobj) > 0, truth)
    stats = json.loads((home / "out" / "statistics.json").read_text())
    assert set(stats) == {"kidney_left", "spleen"}
    with pytest.raises(InputError):
        session.export(None, ["dicom-seg"], home / "out2")  # a NIfTI scan has no DICOM to reference
