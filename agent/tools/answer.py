"""Tool `answer`: one question of a deterministic type (volume, density, compare, presence, count, extent)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from prosector.errors import InputError

from ..intents import classify
from ..questions import QUESTION_INTENTS, answer_concepts, resolve_structures
from .common import ToolResult, guarded

NAME = "answer"


class Args(BaseModel):
    question: str = Field(description="the question in English, e.g. 'is the spleen enlarged?'", min_length=1,
                          max_length=2000)


def _run(session, question: str, progress=None) -> ToolResult:
    intent = classify(question) or "segment"
    if intent not in QUESTION_INTENTS:
        raise InputError(f"the answer tool handles questions about structures; {question!r} asks for {intent} "
                         "(use the draft_report, session or export tool)")
    concepts, steps = resolve_structures(session, question)
    answer, more = answer_concepts(session, intent, concepts, progress=progress)
    return ToolResult.from_answer(answer, steps=[f"intent: {intent}"] + steps + more)


run = guarded(ToolResult, _run)
