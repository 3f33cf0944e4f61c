"""What the agent hands back: a Reply to one request, a Report of findings. Plain data, JSON-ready."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Reply:
    """One answer: the text, the steps taken, and the masks and numbers it rests on."""

    text: str
    steps: list[str] = field(default_factory=list)
    mask_ids: list[str] = field(default_factory=list)
    measurements: list[dict] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)     # {"sentence", "structures", "numbers"}
    warnings: list[str] = field(default_factory=list)
    report: "Report | None" = None
    error: str | None = None                               # a readable sentence, never a traceback
    intent: str | None = None
    planner: str = "offline"
    exit_code: int = 0                                     # for CLIs: 0 answered, 2 bad input, 1 failure

    def to_dict(self) -> dict:
        out = asdict(self)
        out["report"] = self.report.to_dict() if self.report else None
        return out


@dataclass
class Report:
    """Findings, one sentence each, every sentence carrying the structures and numbers it states."""

    markdown: str
    sentences: list[dict] = field(default_factory=list)   # {"text", "structures", "numbers", "reference"}
    region: str | None = None
    mask_ids: list[str] = field(default_factory=list)
    rephrased: bool = False                               # True when an LLM rephrasing passed the check
    rejected: list[str] = field(default_factory=list)     # why a rephrasing was refused, if one was
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
