"""The grounding check that guards LLM wording: numbers and structure names against their evidence."""
from __future__ import annotations

from prosector.agent.grounding import check, check_against, numbers_in, structures_in


def test_numbers_are_read_as_printed():
    text = "Liver minus spleen -11.7 HU; range 107.2-314.5 mL [1]; L3 and T12; ratio 1.40."
    assert numbers_in(text) == [-11.7, 107.2, 314.5, 1.4]  # ranges are not negatives; names and citations are not numbers


def test_structures_named_longest_first():
    found = structures_in("The right kidney is larger than the left kidney; the spleen and the lumbar spine.")
    assert found == {"kidney_right", "kidney_left", "spleen", "lumbar_spine"}


def test_changed_number_and_added_organ_are_caught():
    template = "Spleen: volume 261.0 mL."
    assert check_against("The spleen measures 261.0 mL.", template, {"spleen"}) == []
    assert check_against("The spleen measures 261.4 mL.", template, {"spleen"}) == ["number 261.4 is not in the evidence"]
    problems = check_against("The spleen measures 261.0 mL; the liver is normal.", template, {"spleen"})
    assert problems == ["structure liver is not in the evidence"]
    assert check_against("The left kidney measures 261.0 mL.", template, {"spleen"})


def test_a_group_may_stand_for_its_measured_parts():
    assert check("Kidneys: right 192.6 mL, left 137.4 mL.", [192.6, 137.4], {"kidney_left", "kidney_right"}) == []
    assert check("The right kidney is 192.6 mL.", [192.6], {"kidney_left"}) == ["structure kidney_right is not in the evidence"]
