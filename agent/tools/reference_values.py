"""Tool `reference_values`: what the anatomy tree and agent/data/criteria.yaml hold for a structure."""
from __future__ import annotations

from pydantic import BaseModel, Field

from ..references import reference_values
from .common import ToolResult, guarded, resolve_names

NAME = "reference_values"


class Args(BaseModel):
    structure: str = Field(description="a structure name or id, e.g. 'spleen'")


class ReferenceResult(ToolResult):
    references: list[dict] = []


def _run(session, structure: str) -> ReferenceResult:
    concepts, resolved, steps = resolve_names(session, [structure])
    found = [reference_values(c) for c in concepts]
    lines = []
    for item in found:
        ref, crit = item["reference"], item["criteria"]
        if not ref and not crit:
            lines.append(f"No reference values are recorded for {item['structure']}.")
            continue
        if ref:
            values = {k: v for k, v in ref.items() if k != "source"}
            lines.append(f"{item['structure']}: {values} (source: {ref.get('source', 'not given')}).")
        for name, spec in (crit or {}).items():
            lines.append(f"{item['structure']} is used by the criterion {spec.get('title', name)} "
                         f"(source: {spec.get('source')}).")
    return ReferenceResult(text=" ".join(lines), references=found, resolved=resolved, steps=steps)


run = guarded(ReferenceResult, _run)
