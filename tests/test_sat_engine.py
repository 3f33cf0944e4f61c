"""The `sat` engine end to end with the fixture's mini model in the official file format.

The weights are random, so the masks are meaningless; the plumbing is real: vocabulary checks,
the text-embedding cache, preprocessing, tiling with padding, and masks back on the scan's grid.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from prosector.errors import InputError, RuntimeFailure  # noqa: E402
from prosector.io import load_scan  # noqa: E402
from prosector.models.base import SegmentOptions  # noqa: E402
from prosector.models.sat.engine import SatEngine  # noqa: E402
from prosector.models.sat.preprocess import prepare  # noqa: E402
from prosector.scan import Scan  # noqa: E402

from conftest import SHARED, TOTALSEG  # noqa: E402

FIX = SHARED / "fixtures" / "sat_parity"
TERMS = ["liver", "left kidney", "spleen"]


def mini_engine(**kw) -> SatEngine:
    return SatEngine(
        model=FIX / "checkpoint.pth",
        text_encoder=FIX / "text_tower" / "text_encoder_checkpoint.pth",
        tokenizer_dir=FIX / "text_tower" / "tiny_biolord",
        patch_size=(64, 64, 32),  # the mini model runs at any multiple of 32; small tiles keep this fast
        **kw,
    )


def shifted(scan: Scan, lo, hi) -> Scan:
    """A box of a real scan as its own scan (affine moved to the box's first voxel)."""
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = scan.affine.copy()
    affine[:3, 3] = scan.grid.world(np.array(lo, dtype=float))
    return Scan(np.ascontiguousarray(scan.data[box]), affine, scan.modality, scan.provenance)


def flipped_and_swapped(scan: Scan) -> Scan:
    """The same voxels stored with axis 0 reversed and axes 0/1 swapped: same world, new array."""
    n0 = scan.data.shape[0]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, n0 - 1
    swap = np.eye(4)[[1, 0, 2, 3]]
    data = np.ascontiguousarray(scan.data[::-1].transpose(1, 0, 2))
    return Scan(data, scan.affine @ flip @ swap, scan.modality, scan.provenance)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("prosector_home")
    mp.setenv("PROSECTOR_HOME", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def abdomen(home) -> Scan:
    # 40x32x21 voxels of the real abdominal CT (3 mm): 21 slices is less than one 32-slice tile.
    return shifted(load_scan(TOTALSEG / "example_ct.nii.gz"), (40, 30, 40), (80, 62, 61))


@pytest.fixture(scope="module")
def first_run(abdomen):
    engine = mini_engine()
    seen = []
    masks = engine.segment(abdomen, TERMS, SegmentOptions(progress=lambda f, msg: seen.append((f, msg))))
    return engine, masks, seen


def test_masks_lie_on_the_scan_grid_with_provenance(abdomen, first_run):
    _, masks, seen = first_run
    assert [m.name for m in masks] == TERMS
    for mask in masks:
        assert mask.data.shape == abdomen.data.shape and mask.data.dtype == bool
        assert mask.engine == "sat" and mask.provenance["sat_terms"] == [mask.name]
        assert mask.provenance["tiles"] == len(seen) > 1
        assert 0 < mask.data.mean() < 1  # random weights still give a mixed map, not a constant
    assert seen[-1][0] == 1.0 and "tile" in seen[-1][1]


def test_same_world_answer_when_the_file_stores_axes_differently(abdomen, first_run):
    engine, masks, _ = first_run
    other = flipped_and_swapped(abdomen)
    assert other.orientation != abdomen.orientation
    again = engine.segment(other, TERMS)
    for a, b in zip(masks, again):
        np.testing.assert_array_equal(b.data, a.data[::-1].transpose(1, 0, 2))


def test_text_embeddings_come_from_the_cache_the_second_time(home, abdomen, first_run, monkeypatch):
    _, masks, _ = first_run
    assert list((home / "sat" / "cache").glob("sat-text-*.npz"))
    assert list((home / "sat" / "cache").glob("sha256-*.json"))  # the hash is remembered in the cache ...
    assert not list((FIX / "text_tower").glob("*.sha256*"))       # ... never written beside the weights

    def no_text_tower(*_):
        raise AssertionError("text tower ran although every term was cached")

    engine = mini_engine()
    monkeypatch.setattr(engine, "_encode_terms", no_text_tower)
    again = engine.segment(abdomen, TERMS[:1])
    np.testing.assert_array_equal(again[0].data, masks[0].data)


def test_concept_ids_map_to_sat_terms_through_the_tree_hook(abdomen, first_run):
    _, masks, _ = first_run
    engine = mini_engine(concept_terms=lambda cid: {"kidney_left": ["left kidney"]}.get(cid, []))
    (mask,) = engine.segment(abdomen, ["kidney_left"])
    assert mask.name == "kidney_left" and mask.label == "left kidney"
    np.testing.assert_array_equal(mask.data, masks[1].data)


def test_unknown_term_is_refused_before_any_work(abdomen):
    engine = mini_engine()
    with pytest.raises(InputError, match="no term for 'left adrenal thingy'"):
        engine.segment(abdomen, ["liver", "left adrenal thingy"])
    with pytest.raises(InputError, match="MRI"):
        engine.segment(Scan(abdomen.data, abdomen.affine, "mr", abdomen.provenance), ["arytenoid"])


def test_vocabulary_per_modality():
    engine = mini_engine()
    ct, mr = engine.vocabulary("ct"), engine.vocabulary("mr")
    assert {"liver", "left kidney", "aorta"} <= ct and len(ct) > 250
    assert "liver" in mr and len(mr) > 150 and mr != ct


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch, abdomen):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    engine = SatEngine("pro")
    ready = engine.readiness()
    assert not ready.ready and ready.fix == "prosector weights install sat-pro"
    assert str(tmp_path / "sat" / "pro" / "SAT_Pro.pth") in ready.reason
    with pytest.raises(RuntimeFailure) as err:
        engine.segment(abdomen, ["liver"])
    assert "prosector weights install sat-pro" in err.value.user_message()


def test_2d_image_is_refused(first_run):
    engine, _, _ = first_run
    png = next((SHARED / "data" / "sam_med2d_demo").rglob("*.png"))
    with pytest.raises(InputError, match="3D"):
        engine.segment(load_scan(png, modality="ct"), ["liver"])


def test_probabilities_go_back_to_world_left_and_right():
    """A map that is 1 on the patient's left (world x < 0) in SAT's grid stays there on an LPS file."""
    scan = load_scan(FIX / "preprocessing" / "ct_raw.nii.gz", modality="ct")
    assert scan.orientation == "LPS"
    prepared = prepare(scan)
    ii = np.indices(prepared.grid.shape).reshape(3, -1).T
    left = (prepared.grid.world(ii)[:, 0] < 0).reshape(prepared.grid.shape).astype(np.float32)
    mask = prepared.to_scan_grid(left)
    assert mask.shape == scan.data.shape
    x = scan.grid.world(np.indices(scan.data.shape).reshape(3, -1).T)[:, 0].reshape(scan.data.shape)
    inside_crop = _crop_region_on_scan(prepared, scan)
    assert mask[inside_crop & (x < -1.5)].all()
    assert not mask[x > 1.5].any()


def _crop_region_on_scan(prepared, scan) -> np.ndarray:
    ones = np.ones(prepared.grid.shape, dtype=np.float32)
    # Voxels whose interpolation stencil lies fully inside the crop map to exactly 1.
    return prepared.to_scan_grid(ones, threshold=0.999)


def test_anatomy_tree_names_the_same_vocabulary_and_maps_concepts():
    from prosector.knowledge import load_tree
    from prosector.models.sat.vocabulary import DEV_TERMS_FILE, SatVocabulary

    tree = load_tree()
    from_tree, from_file = SatVocabulary.from_tree(tree), SatVocabulary.from_file(DEV_TERMS_FILE)
    assert from_tree.terms == from_file.terms
    engine = mini_engine(vocabulary=from_tree)
    assert engine.covers("adrenal_gland_left", "ct") and not engine.covers("adrenal_gland_left", "pet")
    assert from_tree.terms_for("adrenal_gland_left", "ct") == ["left adrenal gland"]
    assert not engine.covers("not_a_structure", "ct")


def test_weights_can_be_named_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path))
    monkeypatch.setenv("PROSECTOR_SAT_MODEL", str(FIX / "checkpoint.pth"))
    monkeypatch.setenv("PROSECTOR_SAT_TEXT_ENCODER", str(FIX / "text_tower" / "text_encoder_checkpoint.pth"))
    monkeypatch.setenv("PROSECTOR_SAT_TOKENIZER", str(FIX / "text_tower" / "tiny_biolord"))
    engine = SatEngine()
    assert engine.readiness().ready and engine.files.variant == "custom"
    monkeypatch.delenv("PROSECTOR_SAT_MODEL")
    assert not SatEngine().readiness().ready
