"""Tool `find_structures`: words -> concept ids of the anatomy tree (or suggestions)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from .common import ToolResult, guarded

NAME = "find_structures"


class Args(BaseModel):
    query: str = Field(description="words naming anatomy, e.g. 'left adrenal gland'")
    modality: str | None = Field(default=None, description="ct or mr; default: the loaded scan's")


class FindResult(ToolResult):
    concepts: list[dict] = []
    suggestions: list[dict] = []


def _run(session, query: str, modality: str | None = None) -> FindResult:
    from prosector.knowledge import load_tree, resolve

    if modality is None and session.scan is not None:
        modality = session.scan.modality if session.scan.modality in ("ct", "mr") else None
    tree = load_tree()
    data = resolve(query, modality=modality, scope="any").to_dict(tree)
    concepts = [{k: c[k] for k in ("id", "name", "match", "score", "leaves")} for c in data["concepts"]]
    if concepts:
        text = "Found: " + ", ".join(f"{c['name']} [{c['id']}]" for c in concepts) + "."
    else:
        text = data["question"] or f"No structure matches {query!r}."
    return FindResult(ok=bool(concepts), text=text, concepts=concepts, suggestions=data["suggestions"],
                      resolved={query: [c["id"] for c in concepts]}, error=None if concepts else text)


run = guarded(FindResult, _run)
