"""`prosector mcp` over stdio, driven by the official MCP client, on a real CT with its segmentation."""
from __future__ import annotations

import json
import os
import sys

import anyio
import nibabel as nib
import numpy as np
import pytest

from conftest import REPO, TOTALSEG

CT = TOTALSEG / "example_ct_sm.nii.gz"
SEG = TOTALSEG / "example_seg_fast"
STATS = json.loads((SEG / "statistics.json").read_text())


async def _session_run(script):
    """Start one server (cwd = the repo, shared data allowed) and run `script(session)` against it."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "prosector", "mcp", "--allow", str(REPO), "--allow", str(TOTALSEG)],
                                   cwd=str(REPO), env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await script(session)


@pytest.fixture(scope="module")
def transcript(isolated_home):
    """One server for the module: every call's result, in order, then checked by the tests below."""
    calls = [
        ("find_structures", {"query": "L adrenal"}),
        ("segment", {"image": str(CT), "structures": "liver and spleen", "segmentation": str(SEG)}),
        ("segment", {"image": "/etc/passwd", "structures": "liver"}),
        ("segment", {"image": str(TOTALSEG / ".." / "totalsegmentator" / CT.name), "structures": "liver"}),
        ("segment", {"image": str(CT), "structures": "zorblat gland", "segmentation": str(SEG)}),
        ("find_structures", {"query": 42}),
        ("list_structures", {"modality": "mr"}),
        ("engines", {}),
        ("ask", {"image": str(CT), "question": "how big is the spleen?", "segmentation": str(SEG)}),
        ("draft_report", {"image": str(CT), "segmentation": str(SEG), "region": "abdomen"}),
        ("ask", {"image": str(CT), "question": "how big is the zorblat?", "segmentation": str(SEG)}),
        ("segment", {"image": str(CT), "structures": "left lung", "engine": "classical"}),
    ]

    async def script(session):
        listed = await session.list_tools()
        init_tools = [t.name for t in listed.tools]
        schemas = {t.name: t.input_schema for t in listed.tools}
        results = []
        progress_seen = []

        async def on_progress(progress, total, message):
            progress_seen.append((progress, total, message))

        for name, arguments in calls:
            result = await session.call_tool(name, arguments, progress_callback=on_progress)
            results.append(result)
        # measure the file segment wrote, through the same server
        liver_file = results[1].structured_content["structures"][0]["file"]
        results.append(await session.call_tool("measure", {"image": str(CT), "mask": liver_file}))
        return init_tools, schemas, results, progress_seen

    return anyio.run(script_runner, script)


async def script_runner(script):
    return await _session_run(script)


def _text(result) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_tools_are_listed_with_typed_inputs(transcript):
    tools, schemas, _, _ = transcript
    assert {"find_structures", "list_structures", "engines", "segment", "measure", "ask", "draft_report"} <= set(tools)
    assert schemas["segment"]["properties"]["image"]["type"] == "string"
    assert "image" in schemas["segment"]["required"] and "structures" in schemas["segment"]["required"]


def test_find_structures_resolves_a_clinicians_abbreviation(transcript):
    found = transcript[2][0]
    assert not found.is_error
    concepts = found.structured_content["concepts"]
    assert [c["id"] for c in concepts] == ["adrenal_gland_left"]


def test_segment_with_existing_segmentation_gives_totalsegmentators_volumes(transcript):
    result = transcript[2][1]
    assert not result.is_error, _text(result)
    rows = {r["id"]: r for r in result.structured_content["structures"]}
    assert set(rows) == {"liver", "spleen"}
    for name in ("liver", "spleen"):
        assert rows[name]["volume_mm3"] == pytest.approx(STATS[name]["volume"], rel=1e-6)
        assert rows[name]["intensity_mean"] == pytest.approx(STATS[name]["intensity"], abs=0.01)
        assert rows[name]["intensity_unit"] == "HU"
        written = nib.load(rows[name]["file"])
        reference = nib.load(SEG / f"{name}.nii.gz")
        assert np.array_equal(np.asarray(written.dataobj) > 0, np.asarray(reference.dataobj) > 0)
        assert np.allclose(written.affine, reference.affine)


def test_measure_reads_back_the_written_mask(transcript):
    result = transcript[2][-1]
    assert not result.is_error, _text(result)
    assert result.structured_content["volume_mm3"] == pytest.approx(STATS["liver"]["volume"], rel=1e-6)


def test_bad_calls_are_tool_errors_and_the_server_keeps_serving(transcript):
    results = transcript[2]
    outside, dotdot, unknown, malformed = results[2], results[3], results[4], results[5]
    assert outside.is_error and "outside the allowed folders" in _text(outside)
    assert dotdot.is_error and "'..'" in _text(dotdot)
    assert unknown.is_error and "zorblat" in _text(unknown)
    assert malformed.is_error
    for result in (outside, dotdot, unknown, malformed):
        assert "Traceback" not in _text(result)
    # Calls after the errors still answered.
    assert not results[6].is_error and results[6].structured_content["count"] > 10
    assert not results[7].is_error
    assert any(e["name"] == "precomputed" for e in results[7].structured_content["engines"])


def test_ask_answers_with_the_measured_volume_and_its_evidence(transcript):
    result = transcript[2][8]
    assert not result.is_error, _text(result)
    answer = result.structured_content
    assert "spleen" in answer["mask_ids"]
    spleen = next(m for m in answer["measurements"] if m["name"] == "spleen")
    assert spleen["volume_mm3"] == pytest.approx(STATS["spleen"]["volume"], rel=1e-6)
    assert f"{STATS['spleen']['volume'] / 1000:.1f} mL" in answer["text"]
    assert answer["evidence"] and answer["evidence"][0]["structures"] == ["spleen"]


def test_draft_report_sentences_carry_their_numbers(transcript):
    result = transcript[2][9]
    assert not result.is_error, _text(result)
    report = result.structured_content
    assert report["markdown"].strip() and report["sentences"]
    liver = [s for s in report["sentences"] if s["structures"] == ["liver"]]
    assert liver and liver[0]["numbers"][0]["value"] == pytest.approx(STATS["liver"]["volume"] / 1000, abs=0.05)


def test_a_question_about_an_unknown_structure_is_a_tool_error(transcript):
    result = transcript[2][10]
    assert result.is_error and "Traceback" not in _text(result)


def test_long_runs_send_progress_notifications(transcript):
    result = transcript[2][11]
    assert not result.is_error, _text(result)
    assert result.structured_content["structures"][0]["engine"] == "classical"
    messages = [m for _, _, m in transcript[3]]
    assert any(m and "classical" in m for m in messages), transcript[3]
    assert all(total == 100.0 for _, total, _ in transcript[3])
