"""SAT's vocabulary per modality, and how a structure id becomes the SAT terms that name it.

The anatomy tree (prosector.knowledge) maps concepts to SAT terms (`engines["sat"]`); until it
is wired in, or where a caller passes its own mapping, a structure id that is itself a SAT term
("left kidney" or `left_kidney`) names that term. Anything else is refused, never guessed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from prosector.errors import InputError

from .config import modality_for_query

# Where the list lives in a development checkout (../shared beside the repository).
DEV_TERMS_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "vocab" / "sat_terms.json"

ConceptTerms = Callable[[str], Iterable[str]]  # structure id -> SAT terms (empty if none)


def _normalise(term: str) -> str:
    return " ".join(term.replace("_", " ").lower().split())


class SatVocabulary:
    """Terms SAT was trained on, per text-tower modality (ct, mri, pet)."""

    def __init__(self, terms_by_modality: dict[str, set[str]], concept_terms: ConceptTerms | None = None):
        self.terms = {m: {_normalise(t) for t in ts} for m, ts in terms_by_modality.items()}
        self.concept_terms = concept_terms

    @classmethod
    def from_file(cls, path: str | Path, concept_terms: ConceptTerms | None = None) -> "SatVocabulary":
        path = Path(path)
        try:
            entries = json.loads(path.read_text())["terms"]
            by_modality: dict[str, set[str]] = {}
            for entry in entries:
                by_modality.setdefault(modality_for_query(entry["modality"]), set()).add(entry["term"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"cannot read the SAT vocabulary ({err})", path=path) from err
        return cls(by_modality, concept_terms)

    @classmethod
    def from_tree(cls, tree, concept_terms: ConceptTerms | None = None) -> "SatVocabulary":
        """Terms as the anatomy tree records them (`engines.sat`: term + modalities) on its concepts."""
        by_modality: dict[str, set[str]] = {}
        for concept in tree:
            for entry in concept.engines.get("sat", []):
                for modality in entry.get("modalities", ()):
                    by_modality.setdefault(modality_for_query(modality), set()).add(entry["term"])
        return cls(by_modality, concept_terms or (lambda sid: (tree.find(sid).sat_terms() if tree.find(sid) else [])))

    @classmethod
    def default(cls, concept_terms: ConceptTerms | None = None) -> "SatVocabulary":
        """PROSECTOR_SAT_TERMS, else the checkout's ../shared/vocab/sat_terms.json, else the anatomy tree."""
        path = Path(os.environ.get("PROSECTOR_SAT_TERMS") or DEV_TERMS_FILE)
        if path.is_file():
            return cls.from_file(path, concept_terms)
        try:
            from prosector.knowledge import load_tree

            return cls.from_tree(load_tree(), concept_terms)
        except Exception as err:  # no tree either: say what to provide
            raise InputError(
                f"SAT vocabulary not found (no sat_terms.json, anatomy tree unavailable: {err})",
                path=path,
                hint="Set PROSECTOR_SAT_TERMS to SAT's sat_terms.json.",
            ) from err

    def covers(self, structure: str, modality: str) -> bool:
        try:
            return bool(self.terms_for(structure, modality))
        except InputError:
            return False

    def for_modality(self, modality: str) -> set[str]:
        return set(self.terms.get(modality_for_query(modality), set()))

    def terms_for(self, structure: str, modality: str) -> list[str]:
        """The SAT terms that segment `structure` on this modality, or an InputError."""
        known = self.for_modality(modality)
        if self.concept_terms is not None:
            mapped = [_normalise(t) for t in self.concept_terms(structure)]
            usable = [t for t in mapped if t in known]
            if usable:
                return usable
            if mapped:
                raise InputError(
                    f"SAT cannot segment '{structure}' on {modality_for_query(modality).upper()}: "
                    f"its SAT terms ({', '.join(mapped)}) were not trained on this modality"
                )
        term = _normalise(structure)
        if term in known:
            return [term]
        raise InputError(
            f"SAT has no term for '{structure}' on {modality_for_query(modality).upper()}; "
            "resolve free text with `prosector terms` first"
        )
