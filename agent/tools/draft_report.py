"""Tool `draft_report`: grounded findings for a region or the whole scan."""
from __future__ import annotations

from pydantic import BaseModel, Field

from ..drafting import draft_report
from .common import Evidence, Number, ToolResult, guarded

NAME = "draft_report"


class Args(BaseModel):
    region: str | None = Field(default=None, description="abdomen, chest, pelvis, spine, or empty for the whole scan")


class ReportResult(ToolResult):
    report: dict = {}


def _run(session, region: str | None = None, chat_model=None, progress=None) -> ReportResult:
    report = draft_report(session, region or None, chat_model=chat_model, progress=progress)
    evidence = [Evidence(sentence=s["text"], structures=s["structures"],
                         numbers=[Number(**n) for n in s["numbers"]]) for s in report.sentences]
    return ReportResult(text=report.markdown, mask_ids=report.mask_ids, evidence=evidence,
                        numbers=[n for e in evidence for n in e.numbers], warnings=report.warnings,
                        report=report.to_dict())


run = guarded(ReportResult, _run)
