"""Tool `compare`: two structures' volumes, their difference and ratio."""
from __future__ import annotations

from pydantic import BaseModel, Field

from ..questions import answer_concepts
from .common import ToolResult, guarded, resolve_names

NAME = "compare"


class Args(BaseModel):
    a: str = Field(description="first structure, e.g. 'left kidney'")
    b: str = Field(description="second structure, e.g. 'right kidney'")


def _run(session, a: str, b: str, progress=None) -> ToolResult:
    concepts, resolved, steps = resolve_names(session, [a, b])
    answer, more = answer_concepts(session, "compare", concepts, progress=progress)
    return ToolResult.from_answer(answer, resolved=resolved, steps=steps + more)


run = guarded(ToolResult, _run)
