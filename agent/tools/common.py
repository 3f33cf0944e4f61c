"""What every tool returns (typed, JSON-ready) and the shared step: names re-resolved through the tree."""
from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, Field

from prosector.errors import InputError

from ..answers import Answer
from ..templates import prompt_text


class Number(BaseModel):
    value: float
    unit: str
    structure: str
    quantity: str


class Evidence(BaseModel):
    sentence: str
    structures: list[str] = Field(default_factory=list)
    numbers: list[Number] = Field(default_factory=list)


class ToolResult(BaseModel):
    ok: bool = True
    text: str = ""
    mask_ids: list[str] = Field(default_factory=list)
    numbers: list[Number] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    measurements: list[dict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    resolved: dict[str, list[str]] = Field(default_factory=dict)   # a name as given -> concept ids
    steps: list[str] = Field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_answer(cls, answer: Answer, **extra) -> "ToolResult":
        evidence = [Evidence(sentence=s["sentence"], structures=s["structures"],
                             numbers=[Number(**{k: n[k] for k in ("value", "unit", "structure", "quantity")})
                                      for n in s["numbers"]]) for s in answer.sentences]
        return cls(text=answer.text, mask_ids=answer.mask_ids, evidence=evidence,
                   numbers=[n for e in evidence for n in e.numbers], measurements=answer.measurements,
                   warnings=answer.warnings, **extra)

    def for_model(self) -> str:
        """What the model sees: the sentences and ids, not the full measurement records."""
        keep = {"ok", "text", "mask_ids", "warnings", "error", "resolved"}
        return self.model_dump_json(include=keep, exclude_none=True)


def failure(result_type: type[ToolResult], message: str, **extra) -> ToolResult:
    return result_type(ok=False, text=message, error=message, **extra)


def resolve_names(session, names: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Each name through the anatomy tree: an invented or misspelt name never reaches an engine raw."""
    from ..questions import resolve_structures

    if not names:
        raise InputError("no structure named: give at least one structure name")
    concepts: list[str] = []
    resolved: dict[str, list[str]] = {}
    steps: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"structure names must be words, got {name!r}")
        # A real id passes as is; an invented one (kidney_lft) is read as the words it spells.
        text = name if name in _tree_ids() else name.replace("_", " ")
        ids, lines = resolve_structures(session, text)
        resolved[name] = ids
        concepts += ids
        steps += lines
    return list(dict.fromkeys(concepts)), resolved, steps


def _tree_ids() -> set[str]:
    from prosector.knowledge import load_tree

    return {c.id for c in load_tree()}


def description(name: str) -> str:
    return prompt_text(f"tool_{name}.txt")


def guarded(result_type: type[ToolResult], fn: Callable[..., ToolResult]) -> Callable[..., ToolResult]:
    """Honest failures (bad names, nothing loaded, no engine) come back as a result, not an exception."""

    def run(*args, **kwargs) -> ToolResult:
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            return failure(result_type, str(err))

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run
