"""Tool `measure`: volume, attenuation and extent of named structures, from prosector.measure."""
from __future__ import annotations

from pydantic import BaseModel, Field

from ..questions import answer_concepts
from .common import ToolResult, guarded, resolve_names

NAME = "measure"


class Args(BaseModel):
    structures: list[str] = Field(description="structure names or ids, e.g. ['spleen']", min_length=1)


def _run(session, structures: list[str], progress=None) -> ToolResult:
    concepts, resolved, steps = resolve_names(session, structures)
    answer, more = answer_concepts(session, "measure", concepts, progress=progress)
    return ToolResult.from_answer(answer, resolved=resolved, steps=steps + more)


run = guarded(ToolResult, _run)
