"""Check text against its evidence: every number and every structure it states must be in the evidence.

Used on LLM rephrasings of report sentences and on an LLM planner's final wording; text that fails
is replaced by the template text built from the measurements.
"""
from __future__ import annotations

import functools
import re

# A number not glued to a word (L3, T12 and C7 are names), with a minus sign only where it is a sign.
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])(?:(?<![\d])[-−])?\d+(?:\.\d+)?")
_CITATION = re.compile(r"\[\d+\]")
_WORD = re.compile(r"[a-z0-9]+")
MAX_PHRASE_WORDS = 6


def numbers_in(text: str) -> list[float]:
    text = _CITATION.sub(" ", text)
    return [float(n.replace("−", "-")) for n in _NUMBER.findall(text)]


@functools.lru_cache(maxsize=1)
def _phrase_index() -> dict[tuple[str, ...], str]:
    """Concept names and synonyms (and their plural) as word tuples -> concept id."""
    from prosector.knowledge import load_tree

    index: dict[tuple[str, ...], str] = {}
    for concept in load_tree():
        for name in (concept.name, *concept.synonyms):
            words = tuple(_WORD.findall(name.lower()))
            if not words or (len(words) == 1 and len(words[0]) < 4):
                continue  # "l3", "c7" and other short tokens are numbers' business, not names
            index.setdefault(words, concept.id)
            index.setdefault(words[:-1] + (words[-1] + "s",), concept.id)
    return index


def structures_in(text: str) -> set[str]:
    """Concept ids named in the text, longest phrase first (so 'left kidney' is not also 'kidney')."""
    words = _WORD.findall(_CITATION.sub(" ", text.lower()))
    index = _phrase_index()
    found, i = set(), 0
    while i < len(words):
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            concept = index.get(tuple(words[i:i + n]))
            if concept:
                found.add(concept)
                i += n
                break
        else:
            i += 1
    return found


def _related(structures: set[str]) -> set[str]:
    """Evidence structures plus what contains them and what they are made of: 'kidneys' may stand for both."""
    from prosector.knowledge import load_tree

    tree = load_tree()
    out = set(structures)
    for start, step in ((s, d) for s in structures for d in ("up", "down")):
        todo = [start]
        while todo:
            found = tree.find(todo.pop())
            if found is None:
                continue
            nxt = found.parts if step == "down" else (*tree.containers(found.id), *([found.parent] if found.parent else []))
            for other in nxt:
                if other not in out:
                    out.add(other)
                    todo.append(other)
    return out


def check(text: str, allowed_numbers: list[float], allowed_structures: set[str]) -> list[str]:
    """Problems with `text` (empty list: grounded). Numbers compare at their printed value."""
    problems = []
    for value in numbers_in(text):
        if not any(abs(value - ok) < 1e-9 for ok in allowed_numbers):
            problems.append(f"number {value:g} is not in the evidence")
    related = _related(allowed_structures)
    for concept in sorted(structures_in(text) - related):
        problems.append(f"structure {concept} is not in the evidence")
    return problems


def check_against(text: str, reference_text: str, evidence_structures: set[str]) -> list[str]:
    """A rephrasing may state only the numbers and structures of the text it rephrases."""
    allowed = numbers_in(reference_text)
    return check(text, allowed, set(evidence_structures) | structures_in(reference_text))
