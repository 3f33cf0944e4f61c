"""Grounded reports: every number in the Markdown is a stored measurement (or arithmetic on them, or a
cited reference value), and a rephrasing that changes a number or adds an organ is refused."""
from __future__ import annotations

import re

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from conftest import TOTALSEG
from prosector.agent import Agent, Session
from prosector.agent.grounding import numbers_in

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"


@pytest.fixture(scope="module")
def session():
    s = Session.open("report-ct")
    s.load_scan(CT, seg=SEG)
    return s


def _findings(markdown: str) -> str:
    return markdown.split("\nSources:")[0]


def test_every_number_in_the_report_is_a_stored_measurement(session):
    report = Agent(session, llm="offline").report()
    stored = {k: m for k, m in session.measurements.items()}
    volumes = {round(m.volume_ml, 1) for m in stored.values()}
    means = {round(m.intensity_mean, 1) for m in stored.values() if m.intensity_mean is not None}
    for sentence in report.sentences:
        printed = numbers_in(sentence["text"])
        recorded = [n["value"] for n in sentence["numbers"]]
        assert sorted(printed) == sorted(recorded), sentence["text"]
        for n in sentence["numbers"]:
            if n["quantity"] == "volume":
                assert round(stored[n["structure"]].volume_ml, 1) == n["value"]
            elif n["quantity"] == "intensity_mean":
                assert round(stored[n["structure"]].intensity_mean, 1) == n["value"]
            elif n["quantity"] in ("reference_low", "reference_high"):
                assert n["value"] in sentence["reference"]["range"]
    body = _findings(report.markdown)
    allowed = {v for s in report.sentences for v in (n["value"] for n in s["numbers"])}
    for value in numbers_in(body):
        assert value in allowed, value
    assert volumes and means
    assert "[1]" in report.markdown and "Sources:" in report.markdown


def test_region_report_names_its_structures_and_what_is_outside(session):
    report = Agent(session, llm="offline").report("chest")
    text = report.markdown
    assert "Outside the field of view: heart" in text  # the example CT starts at the lung bases
    assert report.region == "chest"
    assert all(s["structures"] or s["text"].startswith(("Outside", "Not assessed", "No structures"))
               for s in report.sentences)


def test_corrupted_rephrasing_is_refused_and_the_template_kept(session):
    template = Agent(session, llm="offline").report("abdomen")
    lines = [s["text"] for s in template.sentences if s["structures"]]
    spleen = next(i for i, t in enumerate(lines) if t.startswith("Spleen"))
    kidneys = next(i for i, t in enumerate(lines) if t.startswith("Kidneys"))
    pancreas = next(i for i, t in enumerate(lines) if t.startswith("Pancreas"))
    rewritten = list(lines)
    # A changed number, an added organ, and one faithful rewording.
    rewritten[spleen] = re.sub(r"\d+\.\d", lambda m: f"{float(m.group()) + 10:.1f}", lines[spleen], count=1)
    rewritten[kidneys] = lines[kidneys].rstrip(".") + "; the pancreas appears normal."
    rewritten[pancreas] = lines[pancreas].replace("Pancreas: volume", "The pancreas measures")
    fake = FakeListChatModel(responses=["\n".join(f"{n}. {t}" for n, t in enumerate(rewritten, 1))])
    agent = Agent(session, llm="offline")
    from prosector.agent.drafting import draft_report

    report = draft_report(session, "abdomen", chat_model=fake)
    texts = [s["text"] for s in report.sentences if s["structures"]]
    assert texts[spleen] == lines[spleen]          # changed number: refused
    assert texts[kidneys] == lines[kidneys]        # added organ: refused
    assert texts[pancreas] == rewritten[pancreas]  # faithful: kept
    assert report.rephrased
    assert any("not in the evidence" in r and "sentence" in r for r in report.rejected)
    assert len(report.rejected) == 2
    assert agent  # the agent is unchanged by a rejected rephrasing


def test_report_regions_known_and_unknown(session):
    reply = Agent(session, llm="offline").ask("draft the findings for the knee")
    # "knee" is no report region: the whole scan is drafted instead of inventing one.
    assert reply.report is not None and reply.report.region is None
    from prosector.agent.drafting import draft_report
    from prosector.errors import InputError

    with pytest.raises(InputError):
        draft_report(session, "elbow")
