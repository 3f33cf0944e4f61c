"""`prosector terms`: single queries, batches in order, the vocabulary list, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prosector.cli import main
from conftest import REPO


@pytest.fixture(autouse=True)
def private_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))


def test_single_query_json(capsys):
    assert main(["terms", "adrenal gland, left", "--json", "--modality", "ct", "--scope", "main"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    assert [c["id"] for c in out["concepts"]] == ["adrenal_gland_left"]
    assert out["concepts"][0]["leaves"] == ["adrenal_gland_left"]
    assert {"match", "score", "name"} <= set(out["concepts"][0])


def test_human_output_and_unknown_exit_status(capsys):
    assert main(["terms", "both", "kidneys"]) == 0
    text = capsys.readouterr().out
    assert "kidney_left, kidney_right" in text
    assert main(["terms", "aortic arch", "--scope", "main", "--modality", "ct"]) == 2
    text = capsys.readouterr().out
    assert "status: unknown" in text and "aorta [aorta]" in text


def test_batch_prints_one_json_object_per_line_in_order(tmp_path, capsys):
    queries = ["RLL", "", "liver and the appendix", "/scans/ct.nii.gz", "T12"]
    path = tmp_path / "queries.txt"
    path.write_text("\n".join(queries) + "\n")
    assert main(["terms", "--batch", str(path), "--modality", "ct", "--scope", "main"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(queries)
    rows = [json.loads(line) for line in lines]
    assert [r["query"] for r in rows] == queries
    assert rows[0]["concepts"][0]["leaves"] == ["lung_lower_lobe_right"]
    assert rows[1]["status"] == "error" and "empty" in rows[1]["error"]
    assert rows[2]["status"] == "partial"
    assert rows[3]["status"] == "error" and "file path" in rows[3]["error"]
    assert rows[4]["concepts"][0]["id"] == "vertebrae_T12"


def test_batch_reads_standard_input():
    proc = subprocess.run([sys.executable, "-m", "prosector", "terms", "--batch", "-", "--modality", "mr"],
                          input="left lung\nspleen\n", capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0]["concepts"][0]["leaves"] == ["lung_left"]        # total_mr holds whole lungs
    assert rows[1]["concepts"][0]["id"] == "spleen"


def test_missing_batch_file_and_missing_query_are_input_errors(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    assert main(["terms", "--batch", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1
    assert main(["terms"]) == 2


def test_list_is_the_vocabulary_and_never_imports_torch():
    code = ("import sys, json, io, contextlib\n"
            "from prosector.cli import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    rc = main(['terms', '--list', '--json', '--modality', 'ct', '--scope', 'main'])\n"
            "rows = json.loads(buf.getvalue())\n"
            "assert rc == 0\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules\n"
            "print(len(rows), sum(1 for r in rows if r['id'] == 'kidney'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, kidney = map(int, proc.stdout.split())
    assert kidney == 1
    assert count >= 117          # every total class, plus the groups made of them
