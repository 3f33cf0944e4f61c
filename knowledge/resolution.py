"""What resolving a request's text gives back: concepts with how they were matched, or a question,
or an honest "unknown" with suggestions. JSON-ready through `to_dict()`."""
from __future__ import annotations

from dataclasses import dataclass, field

from .tree import Tree, load_tree

STATUSES = ("ok", "partial", "ambiguous", "unknown")
MATCH_KINDS = ("exact", "synonym", "id", "rule", "fuzzy", "embedding")


@dataclass(frozen=True)
class Match:
    """One resolved concept: its id, the words it came from, how (match kind) and how sure (0..1)."""

    id: str
    text: str
    match: str
    score: float
    side_rule: str | None = None   # how laterality was decided, when it was


@dataclass(frozen=True)
class Unresolved:
    """Words that name nothing this scope can segment; `concept` when the tree knows what they are."""

    text: str
    reason: str
    concept: str | None = None


@dataclass
class Resolution:
    query: str
    status: str
    concepts: list[Match] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    question: str | None = None
    candidates: list[str] = field(default_factory=list)   # for `ambiguous`: the concepts to choose from
    modality: str | None = None
    scope: str = "main"

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.concepts]

    def leaves(self, tree: Tree | None = None, task: str | None = None) -> list[str]:
        """Union of the concepts' leaves in `task` (default: the modality's main task)."""
        tree = tree or load_tree()
        out: set[str] = set()
        for m in self.concepts:
            out.update(tree.leaves(m.id, task=task, modality=self.modality))
        return sorted(out)

    def to_dict(self, tree: Tree | None = None) -> dict:
        tree = tree or load_tree()
        concepts = []
        for m in self.concepts:
            c = tree.get(m.id)
            item = {"id": m.id, "name": c.name, "leaves": tree.leaves(m.id, modality=self.modality),
                    "match": m.match, "score": round(float(m.score), 3), "text": m.text,
                    "laterality": c.laterality, "engines": tree.engine_names(m.id, self.modality)}
            if m.side_rule:
                item["side_rule"] = m.side_rule
            concepts.append(item)
        return {
            "query": self.query,
            "status": self.status,
            "modality": self.modality,
            "scope": self.scope,
            "concepts": concepts,
            "unresolved": [{"text": u.text, "reason": u.reason, "concept": u.concept} for u in self.unresolved],
            "suggestions": [{"id": s, "name": tree.get(s).name} for s in self.suggestions],
            "candidates": [{"id": s, "name": tree.get(s).name} for s in self.candidates],
            "question": self.question,
        }
