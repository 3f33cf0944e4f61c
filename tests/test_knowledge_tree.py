"""The anatomy tree data: loads into typed concepts, keeps its rules, covers the engines' vocabularies."""
from __future__ import annotations

import json
import shutil

import pytest

from prosector.knowledge import Concept, TreeDataError, load_tree
from prosector.knowledge.tree import DATA_DIR, load_tree_from
from prosector.knowledge.validate import validate_tree

from conftest import SHARED

SAT_TERMS = json.loads((SHARED / "vocab" / "sat_terms.json").read_text())["terms"]


@pytest.fixture(scope="module")
def tree():
    return load_tree()


def test_tree_is_large_typed_and_cached(tree):
    assert len(tree) >= 600
    assert load_tree() is tree
    c = tree.get("adrenal_gland_left")
    assert isinstance(c, Concept)
    assert c.laterality == "left" and c.counterpart == "adrenal_gland_right"
    assert "suprarenal gland" in tree.get("adrenal_gland").synonyms
    assert {"task": "total", "class": "adrenal_gland_left"} in c.engines["totalseg"]
    assert c.snomed["code"] == "23451007" and c.snomed["modifier"]["code"] == "7771000"
    with pytest.raises(KeyError):
        tree.get("no_such_structure")


def test_packaged_tree_passes_the_validator(tree):
    assert validate_tree(tree, SAT_TERMS) == []


@pytest.mark.parametrize("task", ["total", "total_mr", "tissue_types", "body", "lung_vessels", "vertebrae_body",
                                  "appendicular_bones", "heartchambers_highres", "head_glands_cavities",
                                  "headneck_bones_vessels", "headneck_muscles", "liver_segments", "brain_structures"])
def test_every_class_of_the_anatomy_tasks_is_a_concept(tree, task):
    classes = tree.task_classes(task)
    assert classes, f"engines.yaml lists no classes for {task}"
    for cls in classes:
        concept = tree.get(cls)
        assert cls in concept.totalseg_classes(task)
    if task == "total":
        assert len(classes) == 117
    if task == "total_mr":
        assert len(classes) == 50


def test_every_sat_term_maps_to_exactly_one_concept(tree):
    owners = {}
    for c in tree:
        for entry in c.engines.get("sat", []):
            for m in entry["modalities"]:
                owners.setdefault((entry["term"], m), []).append(c.id)
    assert len({t["term"] for t in SAT_TERMS}) == 451
    for t in SAT_TERMS:
        m = {"mri": "mr"}.get(t["modality"], t["modality"])
        assert len(owners.get((t["term"], m), [])) == 1, t
    assert tree.get("adrenal_gland_left").sat_terms("ct") == ["left adrenal gland"]
    assert tree.get("vertebrae_L3").sat_terms() == ["lumbar vertebrae 3 (l3)"]


def test_leaves_are_exact_compositions(tree):
    assert tree.leaves("kidney") == ["kidney_left", "kidney_right"]
    assert tree.leaves("lung_left") == ["lung_lower_lobe_left", "lung_upper_lobe_left"]
    assert tree.leaves("lung_left", modality="mr") == ["lung_left"]          # total_mr has whole lungs
    assert len(tree.leaves("ribs")) == 24
    assert tree.leaves("floating_ribs") == ["rib_left_11", "rib_left_12", "rib_right_11", "rib_right_12"]
    assert tree.leaves("lumbar_spine") == [f"vertebrae_L{i}" for i in range(1, 6)]
    assert tree.leaves("sacrum") == ["sacrum", "vertebrae_S1"]               # v2 labels S1 apart
    # a part without a class of its own is never answered by its container
    assert tree.leaves("aortic_arch") == [] and tree.get("aortic_arch").parent == "aorta"
    assert tree.leaves("lingula") == []
    assert tree.leaves("heart_ventricle_left") == [] and tree.leaves("heart_ventricle_left", task="heartchambers_highres")


def test_sides_are_symmetric_and_groups_take_a_side(tree):
    for c in tree:
        if c.counterpart:
            other = tree.get(c.counterpart)
            assert other.counterpart == c.id and {c.laterality, other.laterality} == {"left", "right"}
    assert tree.with_side("kidney", "left") == ["kidney_left"]
    assert tree.with_side("kidney_right", "left") == ["kidney_left"]
    assert tree.with_side("floating_ribs", "right") == ["rib_right_11", "rib_right_12"]
    assert tree.with_side("lung_middle_lobe_right", "left") is None          # there is no left middle lobe
    assert tree.with_side("liver", "left") is None


def test_reference_values_cite_a_source(tree):
    with_refs = [c for c in tree if c.reference]
    assert len(with_refs) >= 5
    assert all(c.reference.get("source") for c in with_refs)
    assert tree.get("spleen").reference["volume_ml"]["range"] == [107.2, 314.5]


def _copy_data(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    data = _copy_data(tmp_path)
    path = data / "tree_abdomen.yaml"
    lines = path.read_text().splitlines()
    lines.insert(9, "  synonyms: [unclosed, list")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TreeDataError) as err:
        load_tree_from(data)
    message = err.value.user_message()
    assert "tree_abdomen.yaml:1" in message and "YAML error" in message


def test_broken_references_are_reported_with_file_and_line(tmp_path):
    data = _copy_data(tmp_path)
    path = data / "tree_groups.yaml"
    text = path.read_text()
    text += ("- id: broken_group\n  name: broken group\n  parts: [kidney, no_such_part]\n  kind: group\n"
             "- id: bad_side\n  name: bad side\n  laterality: sideways\n  parent: nowhere\n")
    path.write_text(text)
    tree = load_tree_from(data)
    problems = validate_tree(tree)
    n_lines = len(text.splitlines())
    assert f"tree_groups.yaml:{n_lines - 7}: broken_group: part 'no_such_part' does not exist" in problems
    assert any(p.startswith(f"tree_groups.yaml:{n_lines - 3}: bad_side: laterality 'sideways'") for p in problems)
    assert any("parent 'nowhere' does not exist" in p for p in problems)


def test_duplicate_ids_and_unknown_fields_are_rejected(tmp_path):
    data = _copy_data(tmp_path)
    (data / "tree_zz.yaml").write_text("- id: spleen\n  name: second spleen\n")
    with pytest.raises(TreeDataError, match=r"tree_zz.yaml:1: duplicate id 'spleen'"):
        load_tree_from(data)
    (data / "tree_zz.yaml").write_text("- id: new_thing\n  name: new thing\n  colour: red\n")
    with pytest.raises(TreeDataError, match=r"tree_zz.yaml:1: unknown field"):
        load_tree_from(data)


def test_unnamed_engine_class_is_a_problem(tmp_path):
    data = _copy_data(tmp_path)
    engines = data / "engines.yaml"
    engines.write_text(engines.read_text().replace("classes: [spleen, kidney_right,", "classes: [spleen, kidney_middle, kidney_right,", 1))
    problems = validate_tree(load_tree_from(data))
    assert "engines.yaml: class 'kidney_middle' of task 'total' is named by no concept" in problems
