"""Rules the anatomy tree data must keep; every problem names the file and line of the concept."""
from __future__ import annotations

import re

from .tree import LATERALITIES, MODALITIES, SIDES, Tree

KINDS = {"organ", "bone", "muscle", "vessel", "tissue", "lesion", "group", "part", "region", "joint", "cavity", "landmark"}
_ID = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)*$")


def validate_tree(tree: Tree, sat_terms: list[dict] | None = None) -> list[str]:
    """All rule violations as 'file:line: problem' strings (empty when the tree is sound)."""
    problems: list[str] = []
    tasks = tree.engines.get("totalseg", {}).get("tasks", {})
    task_classes = {name: set(spec.get("classes", [])) for name, spec in tasks.items()}

    def bad(concept, message):
        problems.append(f"{concept.file}:{concept.line}: {concept.id}: {message}")

    named_classes: dict[str, set] = {task: set() for task in tasks}
    for c in tree:
        if not _ID.match(c.id):
            bad(c, "id must be letters, digits and single underscores")
        if c.laterality not in LATERALITIES:
            bad(c, f"laterality '{c.laterality}' is not one of {LATERALITIES}")
        if c.kind not in KINDS:
            bad(c, f"kind '{c.kind}' is not one of {sorted(KINDS)}")
        if not set(c.modalities) <= set(MODALITIES):
            bad(c, f"modalities {list(c.modalities)} outside {MODALITIES}")
        if c.counterpart:
            other = tree.find(c.counterpart)
            if other is None:
                bad(c, f"counterpart '{c.counterpart}' does not exist")
            elif c.laterality not in SIDES or {c.laterality, other.laterality} != set(SIDES) or other.counterpart != c.id:
                bad(c, f"counterpart '{c.counterpart}' must be the same structure on the other side, pointing back")
        if c.parent and c.parent not in tree:
            bad(c, f"parent '{c.parent}' does not exist")
        if c.parent == c.id:
            bad(c, "is its own parent")
        for part in c.parts:
            if part not in tree:
                bad(c, f"part '{part}' does not exist")
            elif part == c.id:
                bad(c, "lists itself as a part")
        if c.laterality == "bilateral":
            sides = {tree.get(p).laterality for p in c.parts if p in tree}
            if not set(SIDES) <= sides:
                bad(c, "a bilateral concept needs a left and a right part")
        for entry in c.engines.get("totalseg", []):
            task, cls = entry.get("task"), entry.get("class")
            if task not in task_classes:
                bad(c, f"TotalSegmentator task '{task}' is not in engines.yaml")
            elif cls not in task_classes[task]:
                bad(c, f"class '{cls}' is not in TotalSegmentator task '{task}'")
            else:
                named_classes[task].add(cls)
        for entry in c.engines.get("sat", []):
            if not isinstance(entry, dict) or not entry.get("term") or not entry.get("modalities"):
                bad(c, "a SAT entry needs a term and its modalities")
        classical = c.engines.get("classical", [])
        if not isinstance(classical, list) or not all(isinstance(n, str) for n in classical):
            bad(c, "a classical entry is a list of the classical engine's structure ids")
        if c.reference is not None and not c.reference.get("source"):
            bad(c, "reference values need a source")
        if c.snomed is not None and not str(c.snomed.get("code", "")).isdigit():
            bad(c, "SNOMED code must be digits")
    for task, classes in task_classes.items():
        for cls in sorted(classes - named_classes[task]):
            problems.append(f"engines.yaml: class '{cls}' of task '{task}' is named by no concept")
    problems.extend(_part_cycles(tree))
    if sat_terms is not None:
        problems.extend(_sat_coverage(tree, sat_terms))
    return problems


def _part_cycles(tree: Tree) -> list[str]:
    problems, state = [], {}

    def visit(cid, path):
        if state.get(cid) == "done":
            return
        if state.get(cid) == "active":
            c = tree.get(cid)
            problems.append(f"{c.file}:{c.line}: {cid}: parts form a cycle: {' -> '.join(path + [cid])}")
            return
        state[cid] = "active"
        for part in tree.get(cid).parts:
            if part in tree:
                visit(part, path + [cid])
        state[cid] = "done"

    for c in tree:
        visit(c.id, [])
    return problems


def _sat_coverage(tree: Tree, sat_terms: list[dict]) -> list[str]:
    """Each SAT (term, modality) must be claimed by exactly one concept."""
    claimed: dict[tuple, list[str]] = {}
    for c in tree:
        for entry in c.engines.get("sat", []):
            for m in entry.get("modalities", []):
                claimed.setdefault((entry["term"], m), []).append(c.id)
    problems = []
    for t in sat_terms:
        modality = {"mri": "mr"}.get(t["modality"], t["modality"])
        owners = claimed.get((t["term"], modality), [])
        if len(owners) != 1:
            problems.append(f"SAT term '{t['term']}' ({modality}) is mapped to {len(owners)} concepts {owners}")
    return problems
