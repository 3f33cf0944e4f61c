"""The router: one engine per structure, each engine run once per scan, results cached, reasons kept."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from prosector.errors import InputError, ProsectorError, RuntimeFailure
from prosector.mask import Mask
from prosector.models.base import Engine, SegmentOptions
from prosector.models.cache import MaskCache
from prosector.models.registry import ENGINE_NAMES
from prosector.scan import Scan


@dataclass
class Choice:
    structure: str
    engine: str | None
    reason: str
    # every engine considered, with why it was or was not usable for this structure
    considered: dict[str, str] = field(default_factory=dict)
    concept: str | None = None  # the requested concept this structure is (part of)


@dataclass
class Plan:
    modality: str
    choices: list[Choice]

    @property
    def unroutable(self) -> list[Choice]:
        return [c for c in self.choices if c.engine is None]

    def groups(self) -> dict[str, list[str]]:
        """Engine -> its structures, in the order first requested."""
        grouped: dict[str, list[str]] = {}
        for choice in self.choices:
            if choice.engine and choice.structure not in grouped.get(choice.engine, []):
                grouped.setdefault(choice.engine, []).append(choice.structure)
        return grouped

    def to_dict(self) -> dict:
        return {"modality": self.modality, "choices": [asdict(c) for c in self.choices]}


@dataclass
class RunLog:
    engine: str
    structures: list[str]
    seconds: float
    cached: bool
    device: str
    status: str = "ok"
    error: str | None = None


def decompose(engine: Engine, concept: str, modality: str, parts: Callable[[str], tuple[str, ...]],
              depth: int = 0) -> list[str] | None:
    """The structures `engine` would segment to give `concept` exactly, or None if it cannot."""
    if covers(engine, concept, modality):
        return [concept]
    children = parts(concept) if depth < 8 else ()
    if not children:
        return None
    out: list[str] = []
    for child in children:
        got = decompose(engine, child, modality, parts, depth + 1)
        if got is None:
            return None
        out += [s for s in got if s not in out]
    return out


def covers(engine: Engine, structure: str, modality: str) -> bool:
    custom = getattr(engine, "covers", None)
    return bool(custom(structure, modality)) if callable(custom) else structure in engine.vocabulary(modality)


class Router:
    def __init__(self, engines: dict[str, Engine], preference: list[str] | None = None,
                 cache: MaskCache | None = None):
        self.engines = engines
        self.preference = [n for n in (preference or ENGINE_NAMES) if n in engines]
        self.cache = cache

    def plan(self, scan: Scan, structures: list[str], force: str | None = None) -> Plan:
        """One engine per structure id, each taken whole."""
        return self.plan_concepts(scan, structures, lambda _: (), force)

    def plan_concepts(self, scan: Scan, concepts: list[str], parts: Callable[[str], tuple[str, ...]],
                      force: str | None = None) -> Plan:
        """One engine per concept, which it may name whole or only through its parts.

        For each concept the first ready engine (preference order) that names it, or names every
        one of its parts (recursively), does all of it: a group never mixes engines.
        """
        if force is not None and force not in self.engines:
            raise InputError(f"engine {force!r} is not available here; choose from {', '.join(self.engines)}")
        order = [force] if force else self.preference
        readiness = _LazyReadiness(self.engines)
        choices: list[Choice] = []
        for concept in concepts:
            considered: dict[str, str] = {}
            chosen: tuple[str, list[str]] | None = None
            for name in order:
                structures = decompose(self.engines[name], concept, scan.modality, parts)
                if structures is None:
                    considered[name] = f"does not segment {concept} on {scan.modality.upper()}"
                elif not readiness[name].ready:
                    fix = f" ({readiness[name].fix})" if readiness[name].fix else ""
                    considered[name] = f"could segment it but is not ready: {readiness[name].reason}{fix}"
                elif chosen is None:
                    chosen = (name, structures)
                    considered[name] = "chosen" + (f" (as {', '.join(structures)})" if structures != [concept] else "")
                else:
                    considered[name] = "also able"
            if chosen is None:
                choices.append(Choice(concept, None, "no ready engine segments it on this modality", considered))
                continue
            reason = f"--engine {force}" if force else f"first ready engine in the preference order ({' > '.join(order)})"
            choices += [Choice(s, chosen[0], reason, considered, concept) for s in chosen[1]]
        return Plan(scan.modality, choices)

    def run(self, scan: Scan, plan: Plan, options: SegmentOptions | None = None) -> tuple[list[Mask], list[RunLog]]:
        """Each engine once over its structures; cached results are reused; masks in request order."""
        options = options or SegmentOptions()
        if plan.unroutable:
            raise InputError(describe_unroutable(plan))
        by_name: dict[str, Mask] = {}
        logs: list[RunLog] = []
        for engine_name, structures in plan.groups().items():
            engine = self.engines[engine_name]
            run_key = self._run_key(engine, options)
            started = time.perf_counter()
            cached = self.cache.get(scan, run_key, structures) if self.cache and run_key else None
            if cached is not None:
                masks = cached
            else:
                try:
                    masks = engine.segment(scan, structures, options)
                except ProsectorError:
                    raise
                except Exception as err:  # an engine's own crash becomes one honest line
                    logs.append(RunLog(engine_name, structures, time.perf_counter() - started, False,
                                       engine.device(options.device), "failed", f"{type(err).__name__}: {err}"))
                    raise RuntimeFailure(f"engine {engine_name} failed on {', '.join(structures)}: "
                                         f"{type(err).__name__}: {err}") from err
                _check_on_grid(masks, scan, engine_name)
                if self.cache and run_key:
                    self.cache.put(scan, run_key, masks)
            logs.append(RunLog(engine_name, structures, time.perf_counter() - started, cached is not None,
                               engine.device(options.device)))
            by_name.update({m.name: m for m in masks})
        return [by_name[s] for s in dict.fromkeys(c.structure for c in plan.choices)], logs

    @staticmethod
    def _run_key(engine: Engine, options: SegmentOptions) -> str | None:
        identity = engine.cache_key()
        return None if identity is None else f"{identity}|fast={options.fast}|{options.extra.get('variant', '')}"


class _LazyReadiness(dict):
    """Asks an engine whether it is ready only when it could do the work: readiness may import torch."""

    def __init__(self, engines: dict[str, Engine]):
        super().__init__()
        self.engines = engines

    def __missing__(self, name: str):
        self[name] = self.engines[name].readiness()
        return self[name]


def describe_unroutable(plan: Plan) -> str:
    parts = []
    for choice in plan.unroutable:
        able = {n: why for n, why in choice.considered.items() if "not ready" in why}
        if able:
            parts.append(f"{choice.structure}: " + "; ".join(f"{n} {why}" for n, why in able.items()))
        else:
            parts.append(f"{choice.structure}: no engine segments it on {plan.modality.upper()}")
    return "cannot segment " + " | ".join(parts)


def _check_on_grid(masks: list[Mask], scan: Scan, engine: str) -> None:
    for mask in masks:
        if mask.data.shape != tuple(scan.data.shape[:3]):
            raise RuntimeFailure(f"engine {engine} returned {mask.name} on a {mask.data.shape} grid, "
                                 f"not the scan's {scan.data.shape[:3]}")
