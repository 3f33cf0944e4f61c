"""The anatomy tree: typed concepts loaded from the YAML files in knowledge/data/.

A concept is one node: a stable id (TotalSegmentator class name where one exists), names,
laterality, its anatomical container (`parent`) and, for groups, the concepts it is made of
(`parts`), and which engines name it. `parent` is where a structure lies (used for suggestions);
`parts` is what resolving a group yields, so `parts` must add up to the whole.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from prosector.errors import RuntimeFailure

DATA_DIR = Path(__file__).resolve().parent / "data"
TREE_GLOB = "tree_*.yaml"
SIDES = ("left", "right")
LATERALITIES = ("left", "right", "bilateral", "none")
MODALITIES = ("ct", "mr", "pet")


class TreeDataError(RuntimeFailure):
    """A tree data file that cannot be read or breaks a rule; the message names file and line."""


@dataclass(frozen=True)
class Concept:
    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    laterality: str = "none"
    counterpart: str | None = None
    parent: str | None = None
    parts: tuple[str, ...] = ()
    ordinal: int | None = None
    kind: str = "organ"
    region: str = "whole body"
    modalities: tuple[str, ...] = ("ct", "mr")
    snomed: dict | None = None
    engines: dict = field(default_factory=dict)
    reference: dict | None = None
    source: str | None = None
    file: str = ""
    line: int = 0

    @property
    def is_sided(self) -> bool:
        return self.laterality in SIDES

    def totalseg_classes(self, task: str | None = None) -> list[str]:
        return [e["class"] for e in self.engines.get("totalseg", []) if task is None or e["task"] == task]

    def totalseg_tasks(self) -> list[str]:
        return sorted({e["task"] for e in self.engines.get("totalseg", [])})

    def sat_terms(self, modality: str | None = None) -> list[str]:
        return [e["term"] for e in self.engines.get("sat", []) if modality is None or modality in e.get("modalities", ())]

    def to_dict(self) -> dict:
        out = {
            "id": self.id, "name": self.name, "synonyms": list(self.synonyms), "laterality": self.laterality,
            "counterpart": self.counterpart, "parent": self.parent, "parts": list(self.parts), "kind": self.kind,
            "region": self.region, "modalities": list(self.modalities), "snomed": self.snomed,
            "engines": self.engines, "reference": self.reference, "source": self.source,
        }
        if self.ordinal is not None:
            out["ordinal"] = self.ordinal
        return out


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # C parser: 10x faster
    """Safe YAML loader that remembers the line each mapping starts on (for error messages)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)

_FIELDS = {"id", "name", "synonyms", "laterality", "counterpart", "parent", "parts", "ordinal", "kind", "region",
           "modalities", "snomed", "engines", "reference", "source"}


def _strip_lines(value):
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def read_concept_file(path: Path) -> list[Concept]:
    """Parse one tree file into concepts; a syntax or shape error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
        items = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        raise TreeDataError(f"{path.name}:{line}: YAML error: {err.problem or err}", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise TreeDataError(f"cannot read tree file: {err}", path=str(path)) from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise TreeDataError(f"{path.name}:1: expected a list of concepts", path=str(path))
    concepts = []
    for item in items:
        if not isinstance(item, dict):
            raise TreeDataError(f"{path.name}: every list item must be a mapping, got {item!r}", path=str(path))
        line = item.get("__line__", 0)
        unknown = set(item) - _FIELDS - {"__line__"}
        if unknown:
            raise TreeDataError(f"{path.name}:{line}: unknown field(s) {sorted(unknown)}", path=str(path))
        for required in ("id", "name"):
            if not isinstance(item.get(required), str) or not item[required].strip():
                raise TreeDataError(f"{path.name}:{line}: concept needs a non-empty '{required}'", path=str(path))
        data = _strip_lines(item)
        try:
            concepts.append(Concept(
                id=data["id"], name=data["name"], synonyms=tuple(data.get("synonyms") or ()),
                laterality=data.get("laterality") or "none", counterpart=data.get("counterpart"),
                parent=data.get("parent"), parts=tuple(data.get("parts") or ()), ordinal=data.get("ordinal"),
                kind=data.get("kind") or "organ", region=data.get("region") or "whole body",
                modalities=tuple(data.get("modalities") or ("ct", "mr")), snomed=data.get("snomed"),
                engines=data.get("engines") or {}, reference=data.get("reference"), source=data.get("source"),
                file=path.name, line=line,
            ))
        except (TypeError, ValueError) as err:
            raise TreeDataError(f"{path.name}:{line}: malformed concept {data.get('id')!r}: {err}", path=str(path)) from None
    return concepts


class Tree:
    """All concepts, indexed by id, with the relations the resolver and engines need."""

    def __init__(self, concepts: list[Concept], engines: dict, data_hash: str):
        self._by_id: dict[str, Concept] = {}
        for concept in concepts:
            if concept.id in self._by_id:
                first = self._by_id[concept.id]
                raise TreeDataError(
                    f"{concept.file}:{concept.line}: duplicate id '{concept.id}' (first at {first.file}:{first.line})")
            self._by_id[concept.id] = concept
        self.engines = engines
        self.data_hash = data_hash
        self._main_task = dict(engines.get("totalseg", {}).get("main_task", {"ct": "total", "mr": "total_mr"}))
        self._task_modality = {name: spec.get("modality", "ct")
                               for name, spec in engines.get("totalseg", {}).get("tasks", {}).items()}
        self._children: dict[str, list[str]] = {}
        for concept in concepts:
            if concept.parent:
                self._children.setdefault(concept.parent, []).append(concept.id)
        self._containers: dict[str, list[str]] = {}
        for concept in concepts:
            for part in concept.parts:
                self._containers.setdefault(part, []).append(concept.id)

    # -- lookup -------------------------------------------------------------------------------
    def get(self, concept_id: str) -> Concept:
        try:
            return self._by_id[concept_id]
        except KeyError:
            raise KeyError(f"no concept '{concept_id}' in the anatomy tree") from None

    def find(self, concept_id: str) -> Concept | None:
        return self._by_id.get(concept_id)

    def __contains__(self, concept_id: object) -> bool:
        return concept_id in self._by_id

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    # -- engines and modalities ---------------------------------------------------------------
    def main_task(self, modality: str | None) -> str:
        """TotalSegmentator task whose classes are `leaves` for this modality (CT when unknown)."""
        return self._main_task.get(modality or "ct", self._main_task.get("ct", "total"))

    def task_modality(self, task: str) -> str:
        return self._task_modality.get(task, "ct")

    def task_classes(self, task: str) -> list[str]:
        return list(self.engines.get("totalseg", {}).get("tasks", {}).get(task, {}).get("classes", []))

    # -- structure ------------------------------------------------------------------------------
    def containers(self, concept_id: str) -> list[str]:
        """Groups that list this concept among their parts."""
        return list(self._containers.get(concept_id, ()))

    def children(self, concept_id: str) -> list[str]:
        """Concepts whose anatomical container (`parent`) is this one."""
        return list(self._children.get(concept_id, ()))

    def ancestors(self, concept_id: str) -> list[str]:
        """The parent chain, nearest first."""
        out, seen = [], {concept_id}
        current = self._by_id.get(concept_id)
        while current is not None and current.parent and current.parent not in seen:
            out.append(current.parent)
            seen.add(current.parent)
            current = self._by_id.get(current.parent)
        return out

    def leaves(self, concept_id: str, task: str | None = None, modality: str | None = None) -> list[str]:
        """TotalSegmentator classes of `task` (default: the modality's main task) that make up the concept exactly.

        A concept named by the task is its own classes; a group is the union of its parts' leaves when
        every part has some; anything else has none (a part is never answered by its container).
        """
        task = task or self.main_task(modality)
        return sorted(self._leaves(concept_id, task, frozenset()))

    @functools.lru_cache(maxsize=None)
    def _leaves(self, concept_id: str, task: str, seen: frozenset) -> frozenset:
        concept = self._by_id.get(concept_id)
        if concept is None or concept_id in seen:
            return frozenset()
        own = concept.totalseg_classes(task)
        if own:
            return frozenset(own)
        if not concept.parts:
            return frozenset()
        out: set[str] = set()
        for part in concept.parts:
            part_leaves = self._leaves(part, task, seen | {concept_id})
            if not part_leaves:
                return frozenset()
            out |= part_leaves
        return frozenset(out)

    def engine_names(self, concept_id: str, modality: str | None = None) -> dict:
        """Per engine, what it calls this concept in this modality (TotalSegmentator tasks, SAT terms, classical ids)."""
        concept = self.get(concept_id)
        ts = [e for e in concept.engines.get("totalseg", [])
              if modality is None or self.task_modality(e["task"]) == modality]
        out: dict = {}
        if ts:
            out["totalseg"] = ts
        sat = concept.sat_terms(modality)
        if sat:
            out["sat"] = sat
        # The weight-free classical engine works on CT Hounsfield units only.
        if concept.engines.get("classical") and modality in (None, "ct"):
            out["classical"] = list(concept.engines["classical"])
        return out

    def covered(self, concept_id: str, scope: str = "any", modality: str | None = None) -> bool:
        """Can some engine in `scope` segment this concept exactly? scope: main | totalseg | any."""
        if scope == "main":
            tasks = [self.main_task(modality)] if modality else [self.main_task("ct"), self.main_task("mr")]
            return any(self.leaves(concept_id, task=t) for t in tasks)
        return self._covered_any(concept_id, scope, modality, frozenset())

    def _covered_any(self, concept_id: str, scope: str, modality: str | None, seen: frozenset) -> bool:
        concept = self._by_id.get(concept_id)
        if concept is None or concept_id in seen:
            return False
        names = self.engine_names(concept_id, modality)
        if "totalseg" in names or (scope == "any" and ("sat" in names or "classical" in names)):
            return True
        return bool(concept.parts) and all(
            self._covered_any(p, scope, modality, seen | {concept_id}) for p in concept.parts)

    def with_side(self, concept_id: str, side: str) -> list[str] | None:
        """The concept(s) that are `concept_id` on the patient's `side`; None when it has no such side."""
        concept = self.get(concept_id)
        if concept.laterality == side:
            return [concept_id]
        if concept.laterality in SIDES:
            return [concept.counterpart] if concept.counterpart else None
        sided = [p for p in concept.parts if self._by_id[p].laterality == side]
        if concept.laterality == "bilateral" and sided:
            return sided[:1]
        if concept.parts:
            out: list[str] = []
            for part in concept.parts:
                if self._by_id[part].laterality in SIDES and self._by_id[part].laterality != side:
                    continue  # the other side's part is not this side's (its counterpart is listed already)
                for got in self.with_side(part, side) or []:
                    if got not in out:
                        out.append(got)
            return out or None
        return None

    def descendant_with_ordinal(self, concept_id: str, ordinal: int) -> str | None:
        """The shallowest part (breadth first) numbered `ordinal`: ribs + 7 -> rib_7."""
        frontier, seen = [concept_id], set()
        while frontier:
            nxt = []
            for cid in frontier:
                for part in self._by_id[cid].parts:
                    if part in seen:
                        continue
                    seen.add(part)
                    if self._by_id[part].ordinal == ordinal:
                        return part
                    nxt.append(part)
            frontier = nxt
        return None

    def sibling_with_ordinal(self, concept_id: str, ordinal: int) -> str | None:
        concept = self.get(concept_id)
        for group in ([concept.parent] if concept.parent else []) + self.containers(concept_id):
            if group in self._by_id:
                found = self.descendant_with_ordinal(group, ordinal)
                if found and self._by_id[found].laterality == concept.laterality:
                    return found
        return None


def tree_files(data_dir: Path = DATA_DIR) -> list[Path]:
    return sorted(Path(data_dir).glob(TREE_GLOB))


def data_hash(data_dir: Path = DATA_DIR) -> str:
    """Hash of every data file: the key of caches built from the tree."""
    digest = hashlib.sha256()
    for path in sorted(Path(data_dir).glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_tree_from(data_dir: Path | str) -> Tree:
    data_dir = Path(data_dir)
    files = tree_files(data_dir)
    if not files:
        raise TreeDataError(f"no {TREE_GLOB} files in the anatomy data folder", path=str(data_dir))
    concepts: list[Concept] = []
    for path in files:
        concepts.extend(read_concept_file(path))
    engines_path = data_dir / "engines.yaml"
    try:
        engines = yaml.safe_load(engines_path.read_text(encoding="utf-8")) if engines_path.exists() else {}
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        raise TreeDataError(f"engines.yaml:{line}: YAML error: {err.problem}", path=str(engines_path)) from None
    return Tree(concepts, engines or {}, data_hash(data_dir))


@functools.lru_cache(maxsize=1)
def load_tree() -> Tree:
    """The packaged anatomy tree, read once per process."""
    return load_tree_from(DATA_DIR)
