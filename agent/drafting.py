"""Report drafting: one sentence per finding from templates and stored measurements, each with its evidence.

An LLM may rephrase the sentences; a rephrased sentence is kept only when every number and every
structure it names is in that sentence's evidence (agent.grounding), else the template text stays.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable

import yaml

from prosector.errors import InputError

from . import answers
from .answers import HU_DECIMALS, RATIO_DECIMALS, VOLUME_DECIMALS, display_name, fmt
from .references import criteria, enlargement_limit, volume_range
from .templates import fill, prompt_text
from .types import Report

DATA_DIR = Path(__file__).resolve().parent / "data"
REGION_ALIASES = {"thorax": "chest", "abdominal": "abdomen", "pelvic": "pelvis", "whole": None, "all": None}


@functools.lru_cache(maxsize=1)
def regions() -> dict:
    return yaml.safe_load((DATA_DIR / "report_regions.yaml").read_text())


def _num(text: str, unit: str, structure: str, quantity: str) -> dict:
    return {"value": float(text), "unit": unit, "structure": structure, "quantity": quantity}


class _Draft:
    """Sentences under construction, with the sources they cite numbered in order of first use."""

    def __init__(self):
        self.sentences: list[dict] = []
        self.sources: list[str] = []
        self.mask_ids: list[str] = []
        self.warnings: list[str] = []

    def cite(self, source: str) -> str:
        if source not in self.sources:
            self.sources.append(source)
        return f"[{self.sources.index(source) + 1}]"

    def say(self, key: str, structures: list[str], numbers: list[dict], reference: dict | None = None, **values):
        text = fill("report_templates", key, **values)
        self.sentences.append({"text": text, "structures": structures, "numbers": numbers, "reference": reference,
                               "template": text})
        self.mask_ids += [s for s in structures if s not in self.mask_ids]


def draft_report(session, region: str | None = None, chat_model=None,
                 progress: Callable[[float, str], None] | None = None) -> Report:
    """Findings for `region` (abdomen, chest, pelvis, spine) or every region when None."""
    region = REGION_ALIASES.get(region, region) if region else None
    table = regions()
    if region is not None and region not in table:
        raise InputError(f"unknown report region {region!r}; choose from {', '.join(table)} (or none for the whole scan)")
    chosen = [region] if region else list(table)
    session.require_scan()
    draft = _Draft()
    headings: list[tuple[str, int]] = []
    outside: list[str] = []
    unassessed: list[str] = []
    done: set[str] = set()
    for number, name in enumerate(chosen):
        headings.append((table[name]["title"], len(draft.sentences)))
        for item in table[name]["findings"]:
            if item["structure"] in done:
                continue  # the aorta spans two regions: reported once, under the first
            done.add(item["structure"])
            if progress:
                progress(number / len(chosen), f"{name}: {item['structure']}")
            _finding(session, draft, item["structure"], item["say"], outside, unassessed)
    if outside:
        names = ", ".join(dict.fromkeys(outside))
        draft.say("outside", [], [], names=names)
    if unassessed:
        draft.say("not_assessed", [], [], names=", ".join(dict.fromkeys(unassessed)))
    if not any(s["structures"] for s in draft.sentences):
        draft.say("empty", [], [])
    rejected: list[str] = []
    rephrased = False
    if chat_model is not None:
        rephrased, rejected = _rephrase(chat_model, draft.sentences)
    markdown = _markdown(draft, headings, region)
    return Report(markdown, [{k: s[k] for k in ("text", "structures", "numbers", "reference")} for s in draft.sentences],
                  region, draft.mask_ids, rephrased, rejected, draft.warnings)


def _finding(session, draft: _Draft, concept: str, say: list[str], outside: list[str], unassessed: list[str]) -> None:
    try:
        by_concept, _ = session.ensure_masks([concept])
    except InputError:
        unassessed.append(display_name(concept))
        return
    ids = by_concept[concept]
    measured = {i: session.measurement(i) for i in ids}
    if all(m.empty for m in measured.values()):
        outside.append(display_name(concept))
        return
    if "levels" in say:
        from .questions import _level_key

        seen = [i for i in sorted(ids, key=_level_key) if not measured[i].empty]
        partial = [answers.short_name(i) for i in seen if measured[i].touches_border]
        names = ", ".join(answers.short_name(i) for i in seen)
        key = "levels_partial" if partial else "levels"
        draft.say(key, seen, [], Group=display_name(concept).capitalize(), names=names, partial=", ".join(partial))
        return
    if "pair" in say:
        _pair(session, draft, concept, ids, measured)
        return
    subject = session.union_mask(concept, ids)
    m = session.measurement(subject)
    if "size" in say:
        _size(draft, subject, m)
    if "density" in say and m.intensity_unit == "HU":
        mean = fmt(m.intensity_mean, HU_DECIMALS)
        draft.say("density", [subject], [_num(mean, "HU", subject, "intensity_mean")],
                  Name=display_name(subject).capitalize(), mean=mean)
    if "fatty_liver" in say and m.intensity_unit == "HU":
        _fatty_liver(session, draft, m)


def _size(draft: _Draft, subject: str, m) -> None:
    name = display_name(subject).capitalize()
    v = fmt(m.volume_ml, VOLUME_DECIMALS)
    numbers = [_num(v, "mL", subject, "volume")]
    found = volume_range(subject)
    limit = enlargement_limit(subject)
    if found is None and limit is not None and (m.volume_ml > limit[0] or not m.touches_border):
        text = fmt(limit[0], VOLUME_DECIMALS)
        key = "size_limit_above" if m.volume_ml > limit[0] else "size_limit_not_above"
        draft.say(key, [subject], numbers + [_num(text, "mL", subject, "reference_limit")],
                  {"quantity": "volume_ml", "enlarged_above": limit[0], "source": limit[1]},
                  Name=name, volume=v, limit=text, ref=draft.cite(limit[1]))
        return
    if m.touches_border:
        draft.warnings.append(f"{display_name(subject)} touches the scan border ({', '.join(m.border_axes)}): "
                              "its volume is a lower bound")
    if found is None or (m.touches_border and m.volume_ml <= found[1]):
        draft.say("size_at_least" if m.touches_border else "size", [subject], numbers, Name=name, volume=v)
        return
    low, high, source = found
    lo, hi = fmt(low, VOLUME_DECIMALS), fmt(high, VOLUME_DECIMALS)
    numbers += [_num(lo, "mL", subject, "reference_low"), _num(hi, "mL", subject, "reference_high")]
    reference = {"quantity": "volume_ml", "range": [low, high], "source": source}
    if m.touches_border:
        key = "size_above_at_least"
    else:
        key = "size_above" if m.volume_ml > high else "size_below" if m.volume_ml < low else "size_within"
    draft.say(key, [subject], numbers, reference, Name=name, volume=v, low=lo, high=hi, ref=draft.cite(source))


def _pair(session, draft: _Draft, concept: str, ids: list[str], measured: dict) -> None:
    from prosector.knowledge import load_tree

    tree = load_tree()
    sides = {}
    for part in tree.get(concept).parts:
        members = [i for i in ids if i == part or part in tree.containers(i)]
        if members:
            sides[tree.get(part).laterality] = session.union_mask(part, members)
    m = {side: session.measurement(i) for side, i in sides.items()}
    present = {side: i for side, i in sides.items() if not m[side].empty}
    group = display_name(concept).capitalize()
    if len(present) == 1:
        side, i = next(iter(present.items()))
        v = fmt(m[side].volume_ml, VOLUME_DECIMALS)
        draft.say("pair_one", [i], [_num(v, "mL", i, "volume")], Group=group, side=side, volume=v)
        return
    if set(present) != {"left", "right"}:
        return
    right, left = fmt(m["right"].volume_ml, VOLUME_DECIMALS), fmt(m["left"].volume_ml, VOLUME_DECIMALS)
    ratio = fmt(float(right) / float(left), RATIO_DECIMALS)
    numbers = [_num(right, "mL", sides["right"], "volume"), _num(left, "mL", sides["left"], "volume"),
               _num(ratio, "", concept, "volume_ratio_right_left")]
    cut = [display_name(sides[s]) for s in ("right", "left") if m[s].touches_border]
    key = "pair_at_least" if cut else "pair"
    draft.say(key, [sides["right"], sides["left"]], numbers, Group=group, right=right, left=left, ratio=ratio,
              cut=", ".join(cut))


def _fatty_liver(session, draft: _Draft, liver) -> None:
    spec = criteria()["fatty_liver"]
    try:
        by_concept, _ = session.ensure_masks(["spleen"])
    except InputError:
        return
    spleen = session.measurement(by_concept["spleen"][0])
    if spleen.empty or liver.empty:
        return
    lv, sp = fmt(liver.intensity_mean, HU_DECIMALS), fmt(spleen.intensity_mean, HU_DECIMALS)
    diff = float(lv) - float(sp)
    d = fmt(diff, HU_DECIMALS)
    threshold = spec["liver_minus_spleen_below_hu"]
    key = "fatty_liver_steatosis" if diff < threshold else "fatty_liver_normal"
    reference = {"criterion": "fatty_liver", "source": spec["source"], "conditions": spec["conditions"]}
    draft.say(key, ["liver", "spleen"],
              [_num(lv, "HU", "liver", "intensity_mean"), _num(sp, "HU", "spleen", "intensity_mean"),
               _num(d, "HU", "liver", "liver_minus_spleen"), _num(str(threshold), "HU", "liver", "criterion_threshold")],
              reference, liver=lv, spleen=sp, difference=d, threshold=threshold, ref=draft.cite(spec["source"]))


def _markdown(draft: _Draft, headings: list[tuple[str, int]], region: str | None) -> str:
    lines = [f"## Findings{f' ({region})' if region else ''}", ""]
    starts = {start: title for title, start in headings} if len(headings) > 1 else {}
    for index, sentence in enumerate(draft.sentences):
        if index in starts:
            lines += ["", f"### {starts[index]}"]
        lines.append(f"- {sentence['text']}")
    if draft.sources:
        lines += ["", "Sources:"] + [f"[{n}] {s}" for n, s in enumerate(draft.sources, 1)]
    lines += ["", "_Measured by Prosector from the segmentation masks; every number above is a stored measurement._"]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


_LINE = re.compile(r"^\s*(\d+)[.)]\s*(.+?)\s*$")


def _rephrase(chat_model, sentences: list[dict]) -> tuple[bool, list[str]]:
    """Let the model reword; keep a reworded sentence only where its numbers and structures check out."""
    from .grounding import check_against
    from .llm.models import LLMUnavailable, invoke_text

    wanted = [s for s in sentences if s["structures"]]
    if not wanted:
        return False, []
    prompt = "\n".join(f"{n}. {s['text']}" for n, s in enumerate(wanted, 1))
    try:
        reply = invoke_text(chat_model, prompt_text("report_rephrase.md"), prompt)
    except LLMUnavailable as err:
        return False, [f"rephrasing skipped: {err}"]
    lines = {int(m.group(1)): m.group(2) for m in map(_LINE.match, reply.splitlines()) if m}
    rejected, kept = [], 0
    for n, sentence in enumerate(wanted, 1):
        new = lines.get(n)
        if not new:
            rejected.append(f"sentence {n}: no rephrasing returned; template kept")
            continue
        problems = check_against(new, sentence["template"], set(sentence["structures"]))
        if problems:
            rejected.append(f"sentence {n}: {'; '.join(problems)}; template kept")
            continue
        sentence["text"] = new
        kept += 1
    return kept > 0, rejected
