"""Tool `segment`: structure names -> masks on the scan's grid (re-resolved, cached in the session)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from ..questions import answer_concepts
from .common import ToolResult, guarded, resolve_names

NAME = "segment"
ENGINES = ("precomputed", "totalseg", "sat", "classical", "medsam")


class Args(BaseModel):
    structures: list[str] = Field(description="structure names or ids, e.g. ['left kidney']", min_length=1)
    engine: str | None = Field(default=None, description="optional engine: " + ", ".join(ENGINES))


def _run(session, structures: list[str], engine: str | None = None, progress=None) -> ToolResult:
    from prosector.errors import InputError

    if engine not in (None, "", "auto") and engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    concepts, resolved, steps = resolve_names(session, structures)
    answer, more = answer_concepts(session, "segment", concepts, engine=engine or None, progress=progress)
    return ToolResult.from_answer(answer, resolved=resolved, steps=steps + more)


run = guarded(ToolResult, _run)
