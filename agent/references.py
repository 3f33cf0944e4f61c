"""Reference values and interpretation criteria, read from data: the knowledge tree and agent/data."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"


@functools.lru_cache(maxsize=1)
def criteria() -> dict:
    return yaml.safe_load((DATA_DIR / "criteria.yaml").read_text()) or {}


def reference(structure: str) -> dict | None:
    """The tree's reference block for a structure (ranges plus `source`), or None."""
    from prosector.knowledge import load_tree

    concept = load_tree().find(structure)
    if concept is None or not concept.reference:
        return None
    return dict(concept.reference)


def volume_range(structure: str) -> tuple[float, float, str] | None:
    """(low, high, source) of the adult volume range in mL, when the tree has one."""
    ref = reference(structure)
    if not ref or not isinstance(ref.get("volume_ml"), dict) or "range" not in ref["volume_ml"]:
        return None
    low, high = ref["volume_ml"]["range"]
    return float(low), float(high), str(ref.get("source") or "source not given")


def enlargement_limit(structure: str) -> tuple[float, str] | None:
    """(volume in mL above which the tree calls the structure enlarged, source), when it has one."""
    ref = reference(structure)
    limit = ref.get("volume_ml", {}).get("enlarged_above") if ref and isinstance(ref.get("volume_ml"), dict) else None
    return (float(limit), str(ref.get("source") or "source not given")) if limit is not None else None


def reference_values(structure: str) -> dict:
    """Everything known for a structure: tree reference values and the criteria that use it."""
    ref = reference(structure) or {}
    using = {name: spec for name, spec in criteria().items() if structure in spec.get("needs", [])}
    return {"structure": structure, "reference": ref or None, "criteria": using or None}
