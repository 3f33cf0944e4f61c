"""Deterministic question answering: an intent and resolved concepts -> masks -> measurements -> Answer.

The offline planner and the `answer` tool both end here; the LLM planner's tools call the same
functions with structure names the model chose (re-resolved through the anatomy tree first).
"""
from __future__ import annotations

from typing import Callable

from prosector.errors import InputError

from . import answers
from .answers import Answer
from .intents import foreign_language

QUESTION_INTENTS = ("segment", "volume", "normal", "density", "density_fatty", "compare", "presence", "count",
                    "extent", "measure")
_LEVELS = {p: i for i, p in enumerate([f"C{n}" for n in range(1, 8)] + [f"T{n}" for n in range(1, 13)]
                                      + [f"L{n}" for n in range(1, 7)] + ["S1"])}


def resolve_structures(session, text: str) -> tuple[list[str], list[str]]:
    """Concept ids named in `text` for this scan's modality, or an InputError saying plainly why not."""
    from prosector.knowledge import load_tree, resolve
    from prosector.segmenting import suggestion_text, unresolved_reason

    scan = session.require_scan()
    tree = load_tree()
    lang = foreign_language(text)
    resolution = resolve(text, modality=scan.modality if scan.modality in ("ct", "mr") else None, scope="any")
    if resolution.status == "ambiguous":
        options = ", ".join(tree.get(c).name for c in resolution.candidates)
        raise InputError(f"{resolution.question or 'Which structure do you mean?'}"
                         + (f" (candidates: {options})" if options else ""))
    if not resolution.concepts:
        if lang:
            raise InputError(f"This request looks {lang.capitalize()}; I only read requests in English. "
                             "Please ask again in English, e.g. 'how big is the spleen?'.")
        suggestions = suggestion_text(resolution, tree)
        raise InputError(f"I cannot answer that: {unresolved_reason(resolution)}."
                         + (suggestions or " Ask 'help' for the questions I answer."))
    steps = [f"resolved: {tree.get(m.id).name} [{m.id}]" + (f" ({m.match})" if m.match != "exact" else "")
             for m in resolution.concepts]
    steps += [f"not understood: {u.text!r} ({u.reason})" for u in resolution.unresolved]
    return list(dict.fromkeys(resolution.ids)), steps


def _subjects(session, concept: str, mask_ids: list[str]) -> list[str]:
    """What a question about `concept` is about: itself, or for a pair group (kidneys) each side."""
    from prosector.knowledge import load_tree

    if mask_ids == [concept]:
        return [concept]
    tree = load_tree()
    found = tree.find(concept)
    parts = list(found.parts) if found else []
    # A left/right pair (kidneys, lungs) is answered side by side; any other group as one union.
    if len(parts) == 2 and not found.is_sided and {tree.get(p).laterality for p in parts if p in tree} == {"left", "right"}:
        out = []
        for part in parts:
            members = [i for i in mask_ids if i == part or part in _containers_of(i)]
            if members:
                out.append(session.union_mask(part, members))
        if out:
            return out
    return [session.union_mask(concept, mask_ids)]


def _common_group(concepts: list[str]) -> str | None:
    """The smallest tree group holding every one of these concepts, if there is one."""
    from prosector.knowledge import load_tree

    tree = load_tree()
    shared = set.intersection(*(_containers_of(c) for c in concepts))
    return min(shared, key=lambda g: len(tree.leaves(g)), default=None)


def _containers_of(structure: str) -> set[str]:
    from prosector.knowledge import load_tree

    tree = load_tree()
    out, todo = set(), [structure]
    while todo:
        for parent in tree.containers(todo.pop()):
            if parent not in out:
                out.add(parent)
                todo.append(parent)
    return out


def answer_concepts(session, intent: str, concepts: list[str], engine: str | None = None,
                    progress: Callable[[float, str], None] | None = None) -> tuple[Answer, list[str]]:
    """Answer one question type about these concepts; returns the answer and the steps taken."""
    if intent not in QUESTION_INTENTS:
        raise InputError(f"unknown question type {intent!r}; choose from {', '.join(QUESTION_INTENTS)}")
    if intent == "density_fatty" or (intent == "density" and "liver" in concepts):
        concepts = list(dict.fromkeys(["liver", *concepts, *(["spleen"] if _spleen_possible(session) else [])]))
    by_concept, steps = session.ensure_masks(concepts, engine=engine, progress=progress)
    measure = session.measurement
    result = Answer()
    if intent == "count":
        if len(by_concept) > 1:
            # "ribs on the left" resolves to twelve ribs: count them as the group that holds them all.
            members = list(dict.fromkeys(i for ids in by_concept.values() for i in ids))
            by_concept = {_common_group(list(by_concept)) or "requested structures": members}
        for concept, ids in by_concept.items():
            members = sorted(ids, key=_level_key)
            result.extend(answers.count(concept, [(i, measure(i)) for i in members]))
        return result, steps
    subjects = [s for concept, ids in by_concept.items() for s in _subjects(session, concept, ids)]
    subjects = list(dict.fromkeys(subjects))
    if intent == "compare":
        if len(subjects) != 2:
            raise InputError(f"I compare two structures at a time; this request names {len(subjects)} "
                             f"({', '.join(answers.display_name(s) for s in subjects)}). "
                             "Name two, e.g. 'compare the left and right kidney'.")
        a, b = subjects
        result.extend(answers.compare(a, measure(a), b, measure(b)))
    elif intent in ("density", "density_fatty"):
        for s in subjects:
            result.extend(answers.density(s, measure(s)))
        if "liver" in subjects:
            spleen = measure("spleen") if "spleen" in subjects else None
            result.extend(answers.fatty_liver(measure("liver"), spleen))
    else:
        for s in subjects:
            m = measure(s)
            if intent == "segment":
                result.extend(answers.segmented(s, m, session.masks[s].engine))
            elif intent == "volume":
                result.extend(answers.volume(s, m, judge=_has_range(s)))
            elif intent == "normal":
                result.extend(answers.volume(s, m, judge=True))
            elif intent == "presence":
                result.extend(answers.presence(s, m))
            elif intent == "extent":
                result.extend(answers.extent(s, m))
            elif intent == "measure":
                result.extend(answers.volume(s, m, judge=_has_range(s)))
                if not m.empty:
                    result.extend(answers.density(s, m))
                    result.extend(answers.extent(s, m))
    steps.append("measured: " + ", ".join(result.mask_ids))
    return result, steps


def _has_range(structure: str) -> bool:
    from .references import volume_range

    return volume_range(structure) is not None


def _spleen_possible(session) -> bool:
    """Whether the spleen can be had for the liver-spleen criterion without failing the question."""
    if "spleen" in session.masks:
        return True
    try:
        plan = session.router().plan(session.require_scan(), ["spleen"])
    except InputError:
        return False
    return not plan.unroutable


def _level_key(structure: str):
    level = structure.split("_", 1)[1] if structure.startswith("vertebrae_") else None
    if level in _LEVELS:
        return (0, "", _LEVELS[level], structure)
    from prosector.knowledge import load_tree

    found = load_tree().find(structure)  # ribs and the like: by side, then by number
    return (1, found.laterality if found else "", (found.ordinal or 0) if found else 0, structure)
