"""Words -> structures -> engines -> masks on the scan's grid: the path every face shares."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from prosector.config import engine_preference, home
from prosector.errors import InputError
from prosector.mask import Mask
from prosector.models.base import SegmentOptions
from prosector.models.cache import MaskCache
from prosector.models.router import Plan, Router, RunLog
from prosector.scan import Scan


@dataclass
class Segmentation:
    scan: Scan
    resolution: object                    # prosector.knowledge.Resolution
    plan: Plan
    masks: list[Mask]
    logs: list[RunLog]
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_request(text: str, modality: str):
    """Resolve the words for this scan's modality, or raise what the user must hear (exit 2)."""
    from prosector.knowledge import load_tree, resolve

    tree = load_tree()
    # scope "any": a concept counts when any engine (TotalSegmentator task, SAT, classical) names it;
    # the router then says which of those is ready here.
    resolution = resolve(text, modality=modality if modality in ("ct", "mr") else None, scope="any")
    if resolution.status == "ambiguous":
        options = ", ".join(tree.get(c).name for c in resolution.candidates)
        raise InputError(f"{resolution.question or 'which structure do you mean?'}"
                         + (f" (candidates: {options})" if options else ""))
    if resolution.status == "unknown" or not resolution.concepts:
        raise InputError(f"cannot segment {text!r}: {unresolved_reason(resolution)}"
                         + suggestion_text(resolution, tree))
    return resolution


def unresolved_reason(resolution) -> str:
    reasons = [f"{u.text!r}: {u.reason}" for u in resolution.unresolved]
    return "; ".join(reasons) or "no anatomical structure recognised"


def suggestion_text(resolution, tree) -> str:
    if not resolution.suggestions:
        return ""
    return " Did you mean: " + ", ".join(tree.get(s).name for s in resolution.suggestions[:5]) + "?"


def build_router(seg=None, class_map=None, preference: list[str] | None = None, cache: bool = True) -> Router:
    from prosector.knowledge import load_tree
    from prosector.models.registry import build_engines

    engines = build_engines(seg=seg, class_map=class_map, tree=load_tree())
    return Router(engines, preference or engine_preference(),
                  MaskCache(home() / "cache" / "masks") if cache else None)


def segment_scan(
    scan: Scan,
    text: str,
    *,
    router: Router,
    engine: str | None = None,
    options: SegmentOptions | None = None,
    announce=None,
) -> Segmentation:
    """Resolve `text`, route each concept to one engine, run each engine once, masks in request order.

    `announce(message)` is told the resolved structures and chosen engines before work starts.
    """
    from prosector.knowledge import load_tree

    tree = load_tree()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    resolution = resolve_request(text, scan.modality)
    timings["resolve"] = time.perf_counter() - started
    warnings = [f"not understood: {u.text!r} ({u.reason})" for u in resolution.unresolved]
    concepts = list(dict.fromkeys(resolution.ids))

    def parts(concept_id: str) -> tuple[str, ...]:
        found = tree.find(concept_id)
        return found.parts if found else ()

    plan = router.plan_concepts(scan, concepts, parts, force=engine if engine not in (None, "auto") else None)
    if plan.unroutable:
        raise InputError(unroutable_message(plan, tree))
    if announce:
        names = ", ".join(f"{tree.get(c).name} [{c}]" for c in concepts)
        announce(f"structures: {names}")
        for engine_name, structures in plan.groups().items():
            announce(f"engine {engine_name}: {', '.join(structures)} ({plan_reason(plan, engine_name)})")
    started = time.perf_counter()
    masks, logs = router.run(scan, plan, options)
    timings["segment"] = time.perf_counter() - started
    for mask in masks:
        concept = tree.find(mask.name)
        if concept and not mask.label:
            mask.label = concept.name
        if mask.empty:
            warnings.append(f"{mask.label or mask.name} is not in this scan's field of view (its mask is empty)")
    return Segmentation(scan, resolution, plan, masks, logs, warnings, timings)


def plan_reason(plan: Plan, engine_name: str) -> str:
    return next(c.reason for c in plan.choices if c.engine == engine_name)


def unroutable_message(plan: Plan, tree) -> str:
    parts = []
    for choice in plan.unroutable:
        name = tree.get(choice.structure).name if choice.structure in tree else choice.structure
        waiting = [f"{n} {why}" for n, why in choice.considered.items() if "not ready" in why]
        if waiting:
            parts.append(f"{name}: {'; '.join(waiting)}")
        else:
            able = tree.engine_names(choice.structure, plan.modality) if choice.structure in tree else {}
            hint = (" (the anatomy tree names it for " + ", ".join(able) + ", which is not installed here)") if able else ""
            parts.append(f"{name}: no engine here segments it on {plan.modality.upper()}{hint}")
    return "cannot segment " + " | ".join(parts)
