"""Standard codes for concepts: what DICOM SEG writers put in a segment's property type."""
from __future__ import annotations

from .tree import load_tree


def snomed_code(structure_id: str) -> tuple[str, str, str] | None:
    """(code, scheme, meaning) of the concept's SNOMED CT code, or None where the tree has none."""
    concept = load_tree().find(structure_id)
    if concept is None or not concept.snomed:
        return None
    code = concept.snomed
    return str(code["code"]), str(code.get("scheme") or "SCT"), str(code.get("meaning") or concept.name)
