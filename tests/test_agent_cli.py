"""`prosector ask` and `prosector report` from the command line: answers, JSON, files, exit codes."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import TOTALSEG
from prosector.cli import main

CT = str(TOTALSEG / "example_ct_sm.nii.gz")
SEG = str(TOTALSEG / "example_seg_fast")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))
    return tmp_path


def _volume(name: str) -> str:
    img = nib.load(f"{SEG}/{name}.nii.gz")
    return f"{(np.asarray(img.dataobj) > 0).sum() * abs(np.linalg.det(img.affine[:3, :3])) / 1000:.1f}"


def test_ask_json(home, capsys):
    assert main(["ask", CT, "which", "kidney", "is", "bigger?", "--seg", SEG, "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert f"({_volume('kidney_right')} mL)" in reply["text"] and f"({_volume('kidney_left')} mL)" in reply["text"]
    assert reply["planner"] == "offline" and set(reply["mask_ids"]) == {"kidney_left", "kidney_right"}
    assert reply["workspace"].startswith("cli-")


def test_ask_again_reuses_the_workspace(home, capsys):
    assert main(["ask", CT, "segment the spleen", "--seg", SEG]) == 0
    first = capsys.readouterr()
    assert "engine: precomputed" in first.err
    assert main(["ask", CT, "how big is the spleen?", "--seg", SEG]) == 0
    second = capsys.readouterr()
    assert "masks: cached in this session" in second.err
    assert _volume("spleen") in second.out


def test_ask_unanswerable_exits_2_with_one_line(home, capsys):
    assert main(["ask", CT, "how big is the tumour?", "--seg", SEG]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "Traceback" not in out.err
    assert [line for line in out.err.splitlines() if line.startswith("prosector:")]


def test_ask_missing_image_exits_2(home, capsys):
    assert main(["ask", str(home / "nope.nii.gz"), "how big is the spleen?"]) == 2
    assert "nope.nii.gz" in capsys.readouterr().err


def test_report_to_files(home, capsys):
    out = home / "findings.md"
    assert main(["report", CT, "--seg", SEG, "--region", "abdomen", "-o", str(out)]) == 0
    markdown = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())
    assert markdown.startswith("## Findings (abdomen)")
    assert f"{_volume('spleen')} mL" in markdown
    assert [s["text"] for s in data["sentences"]] and all("structures" in s for s in data["sentences"])
    assert main(["report", CT, "--seg", SEG, "-o", str(home / "no" / "such" / "dir.md")]) == 2
