"""Free text -> concepts: laterality by rule, levels and ordinals, lists, parts, lesions, bad input."""
from __future__ import annotations

import json

import pytest

from prosector.errors import InputError
from prosector.knowledge import load_tree, resolve
from prosector.knowledge.resolver import Resolver
from prosector.knowledge.lexicon import lexicon


@pytest.fixture(autouse=True)
def lexical_only(monkeypatch, tmp_path):
    # these tests pin the rule and lexical layers; the semantic layer has its own tests
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "home"))
    from prosector.knowledge import resolver as module
    monkeypatch.setattr(module, "default_resolver", lambda: _LEXICAL)


_LEXICAL = Resolver(load_tree(), lexicon(), semantic=False)


def leaves(text, modality="ct", scope="main"):
    return resolve(text, modality=modality, scope=scope).leaves()


@pytest.mark.parametrize("text", ["left kidney", "kidney, left", "kidney (L)", "L kidney", "lt. kidney", "ren sinister",
                                  "the kidney on the patient's left side", "left-sided kidney", "kidney - left",
                                  "sinistral kidney", "kidney on the left"])
def test_left_is_decided_by_rule_in_every_word_order(text):
    assert leaves(text) == ["kidney_left"]


@pytest.mark.parametrize("text,expected", [
    ("kidney on the viewer's left", ["kidney_right"]),
    ("adrenal on the right side of the screen", ["adrenal_gland_left"]),
    ("screen-left lung", ["lung_lower_lobe_right", "lung_middle_lobe_right", "lung_upper_lobe_right"]),
])
def test_viewer_side_follows_the_radiological_convention(text, expected):
    assert leaves(text) == expected


def test_a_paired_structure_without_side_means_both():
    assert leaves("adrenal glands") == ["adrenal_gland_left", "adrenal_gland_right"]
    assert leaves("femur") == ["femur_left", "femur_right"]
    assert leaves("left and right iliopsoas") == ["iliopsoas_left", "iliopsoas_right"]
    assert leaves("bilateral humeri") == ["humerus_left", "humerus_right"]


def test_side_words_inside_a_name_and_with_containers():
    assert leaves("upper lobe of the right lung") == ["lung_upper_lobe_right"]
    assert leaves("lower lobe, left lung") == ["lung_lower_lobe_left"]
    assert leaves("lobus inferior pulmonis dextri") == ["lung_lower_lobe_right"]
    assert leaves("cyst of the left kidney") == ["kidney_cyst_left"]


def test_no_side_that_does_not_exist():
    res = resolve("left middle lobe", modality="ct", scope="main")
    assert res.status == "unknown" and res.concepts == []
    assert "lung_middle_lobe_right" in res.suggestions


@pytest.mark.parametrize("text,expected", [
    ("T12", ["vertebrae_T12"]), ("D12", ["vertebrae_T12"]), ("Th12", ["vertebrae_T12"]),
    ("twelfth thoracic vertebra", ["vertebrae_T12"]), ("vertebra L2", ["vertebrae_L2"]),
    ("L1 to L3", ["vertebrae_L1", "vertebrae_L2", "vertebrae_L3"]),
    ("T11-L1", ["vertebrae_L1", "vertebrae_T11", "vertebrae_T12"]),
    ("the atlas and the axis", ["vertebrae_C1", "vertebrae_C2"]),
    ("lumbar vertebrae 3 through 5", ["vertebrae_L3", "vertebrae_L4", "vertebrae_L5"]),
])
def test_vertebral_levels_and_ranges(text, expected):
    assert leaves(text) == expected


def test_t1_weighted_is_not_a_vertebra():
    assert leaves("liver on the T1-weighted images") == ["liver"]


@pytest.mark.parametrize("text,expected", [
    ("right first rib", ["rib_right_1"]), ("1st rib on the right", ["rib_right_1"]), ("rib 5 left", ["rib_left_5"]),
    ("left eleventh and twelfth ribs", ["rib_left_11", "rib_left_12"]),
    ("left ribs 8 to 10", ["rib_left_10", "rib_left_8", "rib_left_9"]),
    ("floating ribs on the right", ["rib_right_11", "rib_right_12"]),
    ("third ribs", ["rib_left_3", "rib_right_3"]),
])
def test_rib_ordinals_and_sides(text, expected):
    assert leaves(text) == expected


def test_there_is_no_thirteenth_rib():
    res = resolve("rib 13", modality="ct", scope="main")
    assert res.status == "unknown" and not res.concepts


def test_lists_negation_and_elliptical_names():
    assert leaves("liver; spleen / pancreas + gallbladder") == ["gallbladder", "liver", "pancreas", "spleen"]
    assert leaves("thoracic spine except T12 and T11") == [f"vertebrae_T{i}" for i in (1, 10, 2, 3, 4, 5, 6, 7, 8, 9)]
    assert leaves("gluteus maximus and medius on the right") == ["gluteus_maximus_right", "gluteus_medius_right"]
    assert leaves("upper and lower lobes on the left") == ["lung_lower_lobe_left", "lung_upper_lobe_left"]
    assert leaves("the large and small bowel") == ["colon", "small_bowel"]


def test_sentences_keep_context_out():
    assert leaves("Could you please contour the left femur before his hip replacement?") == ["femur_left"]
    assert leaves("Is the left adrenal bigger than the right?") == ["adrenal_gland_left", "adrenal_gland_right"]
    assert leaves("lymph nodes around the aorta") == []
    assert leaves("Segment the spleen, we suspect splenomegaly.") == ["spleen"]


def test_parts_without_a_class_are_never_answered_by_their_container():
    for text, container in [("aortic arch", "aorta"), ("caudate lobe", "liver"), ("renal hilum", "kidney"),
                            ("upper pole of the left kidney", "kidney_left"), ("lingula", "lung_upper_lobe_left")]:
        res = resolve(text, modality="ct", scope="main")
        assert res.status == "unknown" and res.concepts == [], text
        assert container in res.suggestions, (text, res.suggestions)


def test_lesions_are_not_their_organs():
    for text in ["liver metastases", "thyroid nodule", "stone in the right kidney", "adrenal mass", "IVC filter"]:
        res = resolve(text, modality="ct", scope="main")
        assert res.concepts == [], text
    # but a lesion class that exists is returned, with the organ's side
    assert leaves("left renal cyst") == ["kidney_cyst_left"]
    assert leaves("right kidney including its cysts") == ["kidney_cyst_right", "kidney_right"]


def test_partial_reports_what_was_not_understood():
    res = resolve("liver, spleen and the glorpus", modality="ct", scope="main")
    assert res.status == "partial"
    assert res.leaves() == ["liver", "spleen"]
    assert [u.text for u in res.unresolved] == ["glorpus"]
    res = resolve("kidneys and ureters", modality="ct", scope="main")
    assert res.status == "partial" and res.unresolved[0].concept == "ureter"


def test_misspellings():
    assert leaves("pancraes") == ["pancreas"]
    assert leaves("left kindey") == ["kidney_left"]
    assert leaves("oesophagous") == ["esophagus"]
    assert leaves("inferior vena cave") == ["inferior_vena_cava"]


def test_scope_decides_what_counts_as_segmentable():
    assert resolve("uterus", modality="ct", scope="main").status == "unknown"
    sat = resolve("womb", modality="ct", scope="any")           # SAT segments the uterus on CT only
    assert sat.status == "ok" and sat.ids == ["uterus"] and sat.leaves() == []
    mr = resolve("uterus", modality="mr", scope="any")
    assert mr.status == "unknown" and "does not segment it on MR" in mr.question
    assert resolve("left ventricle", modality="ct", scope="totalseg").ids == ["heart_ventricle_left"]
    assert resolve("left ventricle", modality="ct", scope="main").ids == []
    # MR leaves come from total_mr
    assert resolve("left lung", modality="mr", scope="main").leaves() == ["lung_left"]


def test_raw_ids_and_groups():
    assert leaves("kidney_cyst_right") == ["kidney_cyst_right"]
    assert leaves("vertebrae_L3") == ["vertebrae_L3"]
    assert len(leaves("all ribs")) == 24
    assert leaves("shoulder girdle") == ["clavicula_left", "clavicula_right", "scapula_left", "scapula_right"]


def test_resolution_is_json_with_the_cli_layout():
    out = resolve("L adrenal and the aortic arch", modality="ct", scope="main").to_dict()
    json.dumps(out)
    assert out["status"] == "partial"
    assert set(out) >= {"status", "concepts", "unresolved", "suggestions", "question"}
    concept = out["concepts"][0]
    assert concept["id"] == "adrenal_gland_left" and concept["leaves"] == ["adrenal_gland_left"]
    assert concept["match"] in {"exact", "synonym", "rule", "fuzzy", "embedding"} and 0 < concept["score"] <= 1
    assert out["unresolved"][0]["concept"] == "aortic_arch"
    assert out["suggestions"][0]["id"] == "aorta"


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_000, "/data/scans/ct.nii.gz", "C:\\scans\\ct.nrrd", "./seg/liver.nii"])
def test_bad_input_is_a_clear_error(text):
    with pytest.raises(InputError) as err:
        resolve(text)
    assert "\n" not in err.value.user_message()


@pytest.mark.parametrize("text", ["?!...", "---", "左肾", "левая почка"])
def test_no_latin_words_is_an_honest_unknown(text):
    res = resolve(text)
    assert res.status == "unknown" and res.concepts == [] and res.question


def test_unknown_modality_and_scope_are_input_errors():
    with pytest.raises(InputError):
        resolve("liver", modality="xray")
    with pytest.raises(InputError):
        resolve("liver", scope="everything")


def test_context_words_that_look_like_sides_or_structures():
    # "RT" is radiotherapy, "head and neck" is the plan's site, not a request
    res = resolve("We need the spinal cord for head and neck RT.", modality="ct", scope="main")
    assert res.leaves() == ["spinal_cord"] and res.status == "ok"
    assert leaves("Segment the pancreas; ignore the duodenum.") == ["pancreas"]
    assert leaves("The aorta please, from root to bifurcation.") == ["aorta"]
    assert leaves("measure the aorta at the level of the renal arteries") == ["aorta"]


def test_a_side_of_an_unpaired_organ_is_not_the_whole_organ():
    for text in ["right side of the heart", "left colon", "upper ribs", "proximal femur"]:
        res = resolve(text, modality="ct", scope="main")
        assert res.concepts == [] and res.suggestions, text


def test_suggestions_climb_to_what_the_modality_has():
    assert resolve("T12", modality="mr", scope="main").suggestions == ["vertebrae"]   # total_mr: one class for all
    assert resolve("RLL", modality="mr", scope="main").suggestions == ["lung_right"]


def test_default_scope_is_what_prosector_segments_out_of_the_box():
    # the main TotalSegmentator task: SAT-only or subtask-only structures are "unknown" unless asked for
    res = resolve("pituitary gland", modality="ct")
    assert res.scope == "main" and res.concepts == [] and res.status == "unknown"
    assert resolve("pituitary gland", modality="ct", scope="any").ids == ["pituitary_gland"]   # SAT has it on CT


def test_misspellings_prefer_the_word_that_makes_a_name():
    assert leaves("suprarenal glnad") == ["adrenal_gland_left", "adrenal_gland_right"]   # gland, not gonad
    assert leaves("glutues maximus") == ["gluteus_maximus_left", "gluteus_maximus_right"]
    assert leaves("lef kidney") == ["kidney_left"]
    assert leaves("spinal cord and brian") == ["brain", "spinal_cord"]
    assert leaves("spinalcord") == ["spinal_cord"]


def test_lesions_need_their_own_class_and_remarks_are_context():
    res = resolve("the mass in the liver", modality="ct", scope="main")
    assert res.concepts == [] and "liver" in res.suggestions
    assert leaves("the pancreas, rule out tumour") == ["pancreas"]
    assert resolve("nodule in the left lower lobe", modality="ct").suggestions == ["lung_lower_lobe_left"]


def test_levels_outside_the_column_are_refused():
    for text in ["T13", "C8"]:
        res = resolve(text, modality="ct")
        assert res.concepts == [] and res.unresolved[0].reason == "no such vertebral level"
    assert resolve("S3", modality="ct").suggestions == ["sacrum"]        # fused sacral segment, inside the sacrum


@pytest.mark.parametrize("task,modality", [("total", "ct"), ("total_mr", "mr")])
def test_every_main_task_class_by_id_name_and_synonym(task, modality):
    tree = load_tree()
    for cls in tree.task_classes(task):
        expected = tree.leaves(cls, modality=modality)   # CT sacrum: sacrum + vertebrae_S1
        for text in (cls, cls.replace("_", " "), tree.get(cls).name, *tree.get(cls).synonyms):
            assert leaves(text, modality=modality) == expected, text


def test_every_paired_total_structure_takes_either_side_in_any_word_order():
    tree = load_tree()
    for concept in tree:
        if concept.laterality != "bilateral":
            continue
        by_side = {tree.get(p).laterality: p for p in concept.parts}
        if not all(tree.leaves(by_side[s]) for s in ("left", "right")):
            continue
        for text in (concept.name, *concept.synonyms):
            for side in ("left", "right"):
                for query in (f"{side} {text}", f"{text}, {side}", f"{text} on the {side}"):
                    assert leaves(query) == tree.leaves(by_side[side]), query


def test_every_sat_term_resolves_to_its_own_concept_when_sat_counts():
    from conftest import SHARED

    tree = load_tree()
    owner = {e["term"]: c.id for c in tree for e in c.engines.get("sat", [])}
    for term in json.loads((SHARED / "vocab" / "sat_terms.json").read_text())["terms"]:
        modality = {"mri": "mr", "pet": None}.get(term["modality"], term["modality"])
        res = resolve(term["term"], modality=modality, scope="any")
        assert res.ids == [owner[term["term"]]], term


def test_a_disc_named_by_its_levels():
    res = resolve("the disc between L4 and L5", modality="mr", scope="any")
    assert res.ids == ["intervertebral_disc_L4_L5"]
    assert resolve("left thyroid", modality="ct", scope="any").ids == ["thyroid_lobe_left"]
