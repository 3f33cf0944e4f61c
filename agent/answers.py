"""Grounded answers: each a few sentences built from prosector.measure numbers, with the evidence.

Every number printed here is a measurement (or arithmetic on measurements) rounded to the precision
below; the evidence records the printed value so that a check, or a reader, can trace it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prosector.measure import Measurements

from .references import criteria, enlargement_limit, volume_range
from .templates import fill

VOLUME_DECIMALS = 1    # mL
HU_DECIMALS = 1        # HU or a.u.
LENGTH_DECIMALS = 1    # mm
RATIO_DECIMALS = 2


def fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text  # never "-0.0"


@dataclass
class Answer:
    sentences: list[dict] = field(default_factory=list)   # {"sentence", "structures", "numbers", "reference"}
    mask_ids: list[str] = field(default_factory=list)
    measurements: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s["sentence"] for s in self.sentences)

    def say(self, sentence: str, structures: list[str], numbers: list[dict] | None = None,
            reference: dict | None = None) -> None:
        self.sentences.append({"sentence": sentence, "structures": list(structures),
                               "numbers": numbers or [], "reference": reference})

    def rest_on(self, mask_id: str, m: Measurements) -> None:
        if mask_id not in self.mask_ids:
            self.mask_ids.append(mask_id)
            self.measurements.append({"mask_id": mask_id, **m.to_dict()})

    def extend(self, other: "Answer") -> None:
        self.sentences += other.sentences
        for mask_id, m in zip(other.mask_ids, other.measurements):
            if mask_id not in self.mask_ids:
                self.mask_ids.append(mask_id)
                self.measurements.append(m)
        self.warnings += [w for w in other.warnings if w not in self.warnings]


def number(value: str, unit: str, structure: str, quantity: str) -> dict:
    return {"value": float(value), "text": value, "unit": unit, "structure": structure, "quantity": quantity}


def display_name(structure: str) -> str:
    from prosector.knowledge import load_tree

    concept = load_tree().find(structure)
    return concept.name if concept else structure.replace("_", " ")


def sides(m: Measurements) -> str:
    return ", ".join(m.border_axes)


def _border_warning(mask_id: str, m: Measurements) -> str:
    return f"{display_name(mask_id)} touches the scan border ({sides(m)}): its size is a lower bound"


def opening(mask_id: str, m: Measurements, empty_key: str | None = "not_in_view") -> tuple[Answer, str]:
    """An answer resting on one mask, and the structure's name; an empty mask is said with `empty_key`."""
    a = Answer()
    a.rest_on(mask_id, m)
    name = display_name(mask_id)
    if m.empty and empty_key:
        a.say(fill("answer_templates", empty_key, name=name), [mask_id])
    return a, name


# -- volume and normality ----------------------------------------------------------------------
def volume(mask_id: str, m: Measurements, judge: bool = True) -> Answer:
    """Volume in mL; with the adult range when the tree has one; 'at least' when cut off."""
    a, name = opening(mask_id, m)
    if m.empty:
        return a
    v = fmt(m.volume_ml, VOLUME_DECIMALS)
    numbers = [number(v, "mL", mask_id, "volume")]
    if m.touches_border:
        a.say(fill("answer_templates", "volume_at_least", name=name, volume=v, sides=sides(m)), [mask_id], numbers)
        a.warnings.append(_border_warning(mask_id, m))
    else:
        a.say(fill("answer_templates", "volume", name=name, volume=v), [mask_id], numbers)
    if judge:
        a.extend(normality(mask_id, m))
    return a


def normality(mask_id: str, m: Measurements) -> Answer:
    """Enlarged / small / within range against the tree's adult volume range."""
    a, name = opening(mask_id, m, empty_key=None)
    if m.empty:
        return a
    found = volume_range(mask_id)
    limit = enlargement_limit(mask_id)
    if found is None and limit is not None:
        value, source = limit
        text = fmt(value, VOLUME_DECIMALS)
        key = ("limit_above" if m.volume_ml > value else
               "limit_cut_off" if m.touches_border else "limit_not_above")
        a.say(fill("answer_templates", key, name=name, limit=text, source=source), [mask_id],
              [number(text, "mL", mask_id, "reference_limit")],
              {"quantity": "volume_ml", "enlarged_above": value, "source": source})
        return a
    if found is None:
        a.say(fill("answer_templates", "no_reference", name=name), [mask_id])
        return a
    low, high, source = found
    lo, hi = fmt(low, VOLUME_DECIMALS), fmt(high, VOLUME_DECIMALS)
    ref = {"quantity": "volume_ml", "range": [low, high], "source": source}
    numbers = [number(lo, "mL", mask_id, "reference_low"), number(hi, "mL", mask_id, "reference_high")]
    values = dict(name=name, low=lo, high=hi, source=source)
    if m.touches_border:
        key = "reference_above_at_least" if m.volume_ml > high else "reference_cut_off"
    elif m.volume_ml > high:
        key = "reference_above"
    elif m.volume_ml < low:
        key = "reference_below"
    else:
        key = "reference_within"
    a.say(fill("answer_templates", key, **values), [mask_id], numbers, ref)
    return a


# -- intensity ---------------------------------------------------------------------------------
def density(mask_id: str, m: Measurements) -> Answer:
    a, name = opening(mask_id, m)
    if m.empty:
        return a
    mean, median, std = (fmt(v, HU_DECIMALS) for v in (m.intensity_mean, m.intensity_median, m.intensity_std))
    unit = m.intensity_unit
    if unit != "HU":
        a.say(fill("answer_templates", "density_mr", name=name, mean=mean, unit=unit), [mask_id],
              [number(mean, unit, mask_id, "intensity_mean")])
        return a
    a.say(fill("answer_templates", "density", name=name, mean=mean, median=median, std=std, unit=unit), [mask_id],
          [number(mean, unit, mask_id, "intensity_mean"), number(median, unit, mask_id, "intensity_median"),
           number(std, unit, mask_id, "intensity_std")])
    return a


def fatty_liver(liver: Measurements, spleen: Measurements | None) -> Answer:
    """Liver vs spleen attenuation against the criteria in agent/data/criteria.yaml (CT only)."""
    a = Answer()
    spec = criteria()["fatty_liver"]
    a.rest_on("liver", liver)
    if liver.empty or liver.intensity_unit != "HU":
        return a
    ref = {"criterion": "fatty_liver", "source": spec["source"], "conditions": spec["conditions"]}
    mean_text = fmt(liver.intensity_mean, HU_DECIMALS)
    if spleen is not None and not spleen.empty:
        a.rest_on("spleen", spleen)
        # Difference of the printed means, so the sentence's arithmetic checks out on its own numbers.
        diff = float(fmt(liver.intensity_mean, HU_DECIMALS)) - float(fmt(spleen.intensity_mean, HU_DECIMALS))
        d = fmt(diff, HU_DECIMALS)
        threshold = spec["liver_minus_spleen_below_hu"]
        key = "fatty_liver_steatosis" if diff < threshold else "fatty_liver_normal"
        a.say(fill("answer_templates", key, difference=d, threshold=threshold, source=spec["source"],
                   conditions=spec["conditions"]), ["liver", "spleen"],
              [number(d, "HU", "liver", "liver_minus_spleen"),
               number(str(threshold), "HU", "liver", "criterion_threshold")], ref)
    low = spec["liver_at_or_below_hu"]
    if liver.intensity_mean <= low:
        a.say(fill("answer_templates", "fatty_liver_low", mean=mean_text, threshold=low, source=spec["source"],
                   conditions=spec["conditions"]), ["liver"],
              [number(mean_text, "HU", "liver", "intensity_mean"),
               number(str(low), "HU", "liver", "criterion_threshold")], ref)
    return a


# -- comparison, presence, count, extent ---------------------------------------------------------
def compare(a_id: str, ma: Measurements, b_id: str, mb: Measurements) -> Answer:
    a = Answer()
    a.rest_on(a_id, ma)
    a.rest_on(b_id, mb)
    for mask_id, m in ((a_id, ma), (b_id, mb)):
        if m.empty:
            a.say(fill("answer_templates", "not_in_view", name=display_name(mask_id)), [mask_id])
    if ma.empty or mb.empty:
        return a
    va, vb = fmt(ma.volume_ml, VOLUME_DECIMALS), fmt(mb.volume_ml, VOLUME_DECIMALS)
    if float(va) == float(vb):
        a.say(fill("answer_templates", "compare_equal", a=display_name(a_id), b=display_name(b_id), va=va, vb=vb),
              [a_id, b_id], [number(va, "mL", a_id, "volume"), number(vb, "mL", b_id, "volume")])
    else:
        (big, mbig, vbig), (small, msmall, vsmall) = sorted(((a_id, ma, va), (b_id, mb, vb)),
                                                            key=lambda t: -float(t[2]))
        difference = fmt(float(vbig) - float(vsmall), VOLUME_DECIMALS)
        ratio = fmt(float(vbig) / float(vsmall), RATIO_DECIMALS)
        a.say(fill("answer_templates", "compare_larger", a=display_name(big), b=display_name(small), va=vbig,
                   vb=vsmall, difference=difference, ratio=ratio), [big, small],
              [number(vbig, "mL", big, "volume"), number(vsmall, "mL", small, "volume"),
               number(difference, "mL", big, "volume_difference"), number(ratio, "", big, "volume_ratio")])
    cut = [display_name(i) for i, m in ((a_id, ma), (b_id, mb)) if m.touches_border]
    if cut:
        a.say(fill("answer_templates", "compare_bound", names=" and the ".join(cut)), [a_id, b_id])
        a.warnings += [_border_warning(i, m) for i, m in ((a_id, ma), (b_id, mb)) if m.touches_border]
    return a


def presence(mask_id: str, m: Measurements) -> Answer:
    a, name = opening(mask_id, m, "absent")
    if m.empty:
        return a
    if m.touches_border:
        a.say(fill("answer_templates", "present_partly", name=name, sides=sides(m)), [mask_id])
    else:
        v = fmt(m.volume_ml, VOLUME_DECIMALS)
        a.say(fill("answer_templates", "present", name=name, volume=v), [mask_id], [number(v, "mL", mask_id, "volume")])
    return a


def count(group: str, members: list[tuple[str, Measurements]]) -> Answer:
    a = Answer()
    for mask_id, m in members:
        a.rest_on(mask_id, m)
    seen = [(i, m) for i, m in members if not m.empty]
    total = str(len(members))
    group_name = display_name(group)
    vertebrae = all(i.startswith("vertebrae_") for i, _ in members)
    if vertebrae and "vertebra" not in group_name:
        noun = group_name.replace(" spine", "") + " vertebrae"
    else:
        noun = group_name if group_name.endswith(("s", ")")) else f"parts of the {group_name}"
    if not seen:
        a.say(fill("answer_templates", "count_none", total=total, members=noun), [group],
              [number(total, "", group, "count_total")])
        return a
    names = ", ".join(short_name(i) for i, _ in seen)
    a.say(fill("answer_templates", "count", count=str(len(seen)), total=total, members=noun, names=names),
          [i for i, _ in seen], [number(str(len(seen)), "", group, "count_visible"),
                                 number(total, "", group, "count_total")])
    partial = [i for i, m in seen if m.touches_border]
    if partial:
        a.say(fill("answer_templates", "count_partial", names=", ".join(short_name(i) for i in partial)), partial)
    return a


def short_name(structure: str) -> str:
    """'L3' for vertebrae_L3, 'rib 5 left' for rib_left_5: what a count lists."""
    if structure.startswith("vertebrae_"):
        return structure.split("_", 1)[1]
    return display_name(structure)


def extent(mask_id: str, m: Measurements) -> Answer:
    a, name = opening(mask_id, m)
    if m.empty:
        return a
    z, x, y = (fmt(m.extent_mm[k], LENGTH_DECIMALS) for k in ("z", "x", "y"))
    if m.touches_border:
        a.say(fill("answer_templates", "extent_at_least", name=name, length=z, sides=sides(m)), [mask_id],
              [number(z, "mm", mask_id, "extent_z")])
        a.warnings.append(_border_warning(mask_id, m))
    else:
        a.say(fill("answer_templates", "extent", name=name, length=z, x=x, y=y), [mask_id],
              [number(z, "mm", mask_id, "extent_z"), number(x, "mm", mask_id, "extent_x"),
               number(y, "mm", mask_id, "extent_y")])
    return a


def segmented(mask_id: str, m: Measurements, engine: str) -> Answer:
    a, name = opening(mask_id, m, "segmented_empty")
    if m.empty:
        return a
    v = fmt(m.volume_ml, VOLUME_DECIMALS)
    a.say(fill("answer_templates", "segmented", name=name, volume=v, engine=engine), [mask_id],
          [number(v, "mL", mask_id, "volume")])
    if m.touches_border:
        a.warnings.append(_border_warning(mask_id, m))
    return a
