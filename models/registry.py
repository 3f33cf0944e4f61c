"""Which engines exist, built lazily so a missing optional dependency never breaks the others."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from prosector.models.base import Engine, Readiness

# name -> "module:Class". The order here is the default routing preference.
ENGINE_CLASSES = {
    "precomputed": "prosector.models.precomputed:PrecomputedEngine",
    "totalseg": "prosector.models.totalseg:TotalSegEngine",
    "sat": "prosector.models.sat:SatEngine",
    "classical": "prosector.models.classical:ClassicalEngine",
    "medsam": "prosector.models.medsam:MedSAMEngine",
}
ENGINE_NAMES = tuple(ENGINE_CLASSES)


@dataclass
class Unavailable(Engine):
    """Stands in for an engine whose code cannot be imported here, saying why."""

    name: str = ""
    why: str = ""

    def vocabulary(self, modality: str) -> set[str]:
        return set()

    def readiness(self) -> Readiness:
        return Readiness(False, self.why, "pip install -e . (the engine's dependencies are missing)")

    def segment(self, scan, structures, options=None):
        raise RuntimeError(self.why)


def build_engine(name: str, **kwargs) -> Engine:
    module_name, _, class_name = ENGINE_CLASSES[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        return Unavailable(name=name, why=f"engine code not importable ({err})")
    return cls(**kwargs)


def build_engines(seg: str | Path | None = None, class_map=None, tree=None) -> dict[str, Engine]:
    """All engines; `precomputed` only when the user brings a segmentation.

    `tree` (the anatomy tree) tells SAT which of its terms stand for each structure id.
    """
    engines: dict[str, Engine] = {}
    for name in ENGINE_NAMES:
        if name == "precomputed":
            if seg is not None:
                engines[name] = build_engine(name, source=seg, class_map=class_map)
        elif name == "sat" and tree is not None:
            engines[name] = build_engine(name, concept_terms=lambda sid: _sat_terms(tree, sid))
        else:
            engines[name] = build_engine(name)
    return engines


def _sat_terms(tree, structure: str) -> list[str]:
    concept = tree.find(structure)
    return concept.sat_terms() if concept else []
