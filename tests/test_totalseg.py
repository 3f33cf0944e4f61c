"""The `totalseg` engine running TotalSegmentator's real pipeline offline on tiny banded models.

The models (tests/totalseg_fixture.py) label each voxel by its nearest intensity band, so the
masks are checkable against a numpy oracle while TotalSegmentator does its real work around them:
reorientation of the LPS MR, resampling, roi_subset cropping, sliding window, export workers.
Three TotalSegmentator runs per session (CT with roi_subset, CT whole task, MR), many assertions.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("totalsegmentator")
pytest.importorskip("nnunetv2")

from prosector.errors import InputError, RuntimeFailure  # noqa: E402
from prosector.io import load_scan  # noqa: E402
from prosector.models.base import SegmentOptions  # noqa: E402
from prosector.models.cache import MaskCache  # noqa: E402
from prosector.models.router import Router  # noqa: E402
from prosector.models.totalseg import TotalSegEngine, locate, weights_layout  # noqa: E402

from conftest import TOTALSEG  # noqa: E402
from totalseg_fixture import (CT_BANDS_HU, MODELS, InetGuard, band_centres, build_weights,  # noqa: E402
                              normalised_ct, oracle_labels)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.interface.*:FutureWarning")

CT_SM = TOTALSEG / "example_ct_sm.nii.gz"
MR_SM = TOTALSEG / "example_mr_sm.nii.gz"
ROI_REQUEST = ["liver", "vertebrae_L1", "spleen"]            # spleen lies in no band: empty, still returned
WHOLE_REQUEST = ["lung_lower_lobe_right", "colon", "liver", "vertebrae_L1"]
MR_REQUEST = ["spleen", "liver"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="session")
def scans():
    return load_scan(CT_SM, modality="ct"), load_scan(MR_SM, modality="mr")


@pytest.fixture(scope="session")
def fixture_env(tmp_path_factory):
    """Tiny weights, and a TotalSegmentator config that still says stats ON (its own default)."""
    root = tmp_path_factory.mktemp("totalseg")
    home, weights = root / "home", root / "weights"
    build_weights(weights)
    home.mkdir()
    # The engine must turn this off before it calls anything.
    (home / "config.json").write_text(json.dumps({"totalseg_id": "totalseg_TESTTEST", "send_usage_stats": True,
                                                  "prediction_counter": 0}))
    return {"root": root, "home": home, "weights": weights}


@pytest.fixture(scope="session")
def runs(fixture_env, scans):
    """Three engine runs (CT roi_subset, CT whole task through the router, MR) under a network guard."""
    root, home, weights = fixture_env["root"], fixture_env["home"], fixture_env["weights"]
    prosector_home = root / "prosector"
    nnunet_before = {k: os.environ.get(k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTALSEG_HOME_DIR", str(home))
        mp.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
        mp.setenv("PROSECTOR_HOME", str(prosector_home))
        engine = TotalSegEngine()
        ct, mr = scans
        progress: list[tuple[float, str]] = []
        with InetGuard() as guard:
            roi = engine.segment(ct, ROI_REQUEST, SegmentOptions(device="cpu", progress=lambda f, m: progress.append((f, m))))
            # The whole-task run goes through the router, whose cache must then answer a narrower request.
            router = Router({"totalseg": engine}, cache=MaskCache(root / "cache"))
            whole_options = SegmentOptions(device="cpu", extra={"roi_subset": False})
            whole, whole_logs = router.run(ct, router.plan(ct, WHOLE_REQUEST), whole_options)
            started = time.perf_counter()
            again, again_logs = router.run(ct, router.plan(ct, ["liver", "colon"]), whole_options)
            again_seconds = time.perf_counter() - started
            mr_masks = engine.segment(mr, MR_REQUEST, SegmentOptions(device="cpu"))
        nnunet_after = {k: os.environ.get(k) for k in nnunet_before}
        yield {"engine": engine, "ct": ct, "mr": mr, "roi": roi, "whole": whole, "mr_masks": mr_masks,
               "whole_logs": whole_logs, "again": again, "again_logs": again_logs, "again_seconds": again_seconds,
               "progress": progress, "guard": guard, "home": home, "weights": weights,
               "nnunet_before": nnunet_before, "nnunet_after": nnunet_after}


def test_masks_lie_on_the_scans_exact_grid_for_ras_ct_and_lps_mr(runs):
    assert runs["mr"].orientation == "LPS" and runs["ct"].orientation == "RAS"
    for key, scan in (("roi", runs["ct"]), ("whole", runs["ct"]), ("mr_masks", runs["mr"])):
        for mask in runs[key]:
            assert mask.data.shape == scan.data.shape[:3], (key, mask.name)
            assert mask.data.dtype == bool
            assert mask.engine == "totalseg"


def test_roi_subset_returns_exactly_the_requested_structures_named_by_class(runs):
    roi = runs["roi"]
    assert [m.name for m in roi] == ROI_REQUEST
    prov = roi[0].provenance
    assert prov["task"] == "total" and prov["fast"] is True and prov["device"] == "cpu"
    assert prov["roi_subset"] == ROI_REQUEST
    assert set(prov["weights"]) == {MODELS[297].folder, MODELS[298].folder}
    assert prov["totalsegmentator_version"] and prov["weights_folder"] == str(runs["weights"])
    assert prov["seconds"] > 0 and prov["classes"] == ["total:liver"]
    by = {m.name: m for m in roi}
    assert by["spleen"].empty                      # no band for spleen: kept as "not in view", never dropped
    assert not by["liver"].empty and not by["vertebrae_L1"].empty
    # The crop only narrows where the model looks: inside it, liver matches the whole-task run.
    whole_liver = {m.name: m for m in runs["whole"]}["liver"].data
    assert dice(by["liver"].data, whole_liver) > 0.97


def test_banded_output_agrees_with_the_numpy_oracle_on_ct(runs):
    hu = runs["ct"].data.astype(np.float64)
    oracle = oracle_labels(normalised_ct(hu), band_centres(MODELS[297]))
    from totalsegmentator.map_to_binary import class_map
    ids = {name: idx for idx, name in class_map["total"].items()}
    whole = {m.name: m for m in runs["whole"]}
    assert [m.name for m in runs["whole"]] == WHOLE_REQUEST
    assert runs["whole"][0].provenance["roi_subset"] is None
    for name, mask in whole.items():
        expected = oracle == ids[name]
        # fp16 logits disagree only at band boundaries and tile corners (fixture README, section 7)
        assert np.mean(mask.data == expected) > 0.99, name
        assert dice(mask.data, expected) > 0.95, name
    # Each mask's mean HU sits inside its own band: the class name really is that class.
    centres = sorted(CT_BANDS_HU.values())
    for name, mask in whole.items():
        c = CT_BANDS_HU[name]
        i = centres.index(c)
        lo = (centres[i - 1] + c) / 2 if i else -np.inf
        hi = (centres[i + 1] + c) / 2 if i + 1 < len(centres) else np.inf
        assert lo - 3 <= hu[mask.data].mean() <= hi + 3, name
    # fixture README, section 7: 135 903 voxels; fp16 boundary voxels may differ on another CPU or GPU
    assert abs(np.count_nonzero(whole["liver"].data) - 135_903) < 300


def test_mr_runs_total_mr_and_agrees_with_the_oracle_on_the_lps_grid(runs):
    mr = runs["mr"]
    masks = {m.name: m for m in runs["mr_masks"]}
    assert [m.name for m in runs["mr_masks"]] == MR_REQUEST
    prov = masks["liver"].provenance
    assert prov["task"] == "total_mr" and prov["fast"] is True
    assert prov["roi_subset"] == MR_REQUEST and prov["weights"] == [MODELS[852].folder]
    values = mr.data.astype(np.float64)
    z = (values - values.mean()) / values.std()
    oracle = oracle_labels(z, band_centres(MODELS[852]))
    from totalsegmentator.map_to_binary import class_map
    ids = {name: idx for idx, name in class_map["total_mr"].items()}
    for name, mask in masks.items():
        assert not mask.empty, name
        expected = oracle == ids[name]
        # roi_subset keeps only a crop around the requested classes: compare there.
        box = tuple(slice(a.min(), a.max() + 1) for a in np.nonzero(mask.data | expected))
        assert np.mean(mask.data[box] == expected[box]) > 0.98, name
        assert dice(mask.data, expected) > 0.9, name


def test_usage_stats_are_switched_off_and_nothing_touches_the_network(runs):
    assert runs["guard"].attempts == []
    config = json.loads((runs["home"] / "config.json").read_text())
    assert config["send_usage_stats"] is False
    assert config["totalseg_id"] == "totalseg_TESTTEST"   # the user's other keys survive
    assert config["prediction_counter"] >= 3             # TotalSegmentator really ran with this config
    assert all(m.provenance["usage_stats_sent"] is False for m in runs["roi"])


def test_environment_and_progress_are_left_clean(runs):
    # setup_nnunet() writes nnUNet_* into os.environ for good; the engine puts them back.
    assert runs["nnunet_after"] == runs["nnunet_before"]
    fractions = [f for f, _ in runs["progress"]]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert "total" in runs["progress"][0][1] and "cpu" in runs["progress"][0][1]


def test_readiness_and_weights_layout_follow_the_users_settings(fixture_env, monkeypatch, tmp_path):
    engine = TotalSegEngine()
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(fixture_env["home"]))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(fixture_env["weights"]))
    assert engine.readiness().ready
    assert engine.readiness(modality="mr").ready
    layout = weights_layout()
    assert layout.weights == fixture_env["weights"] and layout.source == "TOTALSEG_WEIGHTS_PATH"
    # On a GPU the default is full resolution, or the fast models when only their weights are here.
    import prosector.models.totalseg as totalseg
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: True)
    assert engine.device() == "cuda" and engine.cost == "medium" and engine.cache_key().endswith("|cuda")
    assert totalseg.resolution("total", None, layout) is True and engine.readiness().ready
    assert totalseg.resolution("total", False, layout) is False
    strict = engine.readiness(modality="ct", fast=False)
    assert not strict.ready and "Dataset291_TotalSegmentator_part1_organs_1559subj" in strict.reason
    assert "totalseg_download_weights -t total " in strict.fix
    assert totalseg.resolution("liver_segments", None, layout) is False  # no fast mode: always full
    monkeypatch.setattr(totalseg, "_cuda_available", lambda: False)
    # A subtask class whose weights are absent: not ready, and the folder is named.
    state = engine.readiness(modality="ct", structures=["liver_segment_4"])
    assert not state.ready and "Dataset570_ct_liver_segments" in state.reason
    # Nothing set by the user: everything lives under PROSECTOR_HOME/totalseg.
    monkeypatch.delenv("TOTALSEG_HOME_DIR")
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH")
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "ph"))
    layout = weights_layout()
    assert layout.home == tmp_path / "ph" / "totalseg" and layout.weights == layout.home / "nnunet" / "results"
    state = engine.readiness()
    assert not state.ready
    assert str(layout.weights / MODELS[297].folder) in state.reason
    assert str(layout.weights) in state.fix and f"TOTALSEG_HOME_DIR={layout.home}" in state.fix
    # The fix names a download task TotalSegmentator's own downloader knows (it sends no usage stats).
    from totalsegmentator.bin.totalseg_download_weights import TASK_TO_ID
    assert "totalseg_download_weights -t total_fast " in state.fix and "total_fast" in TASK_TO_ID
    mr_state = engine.readiness(modality="mr")
    assert not mr_state.ready and str(layout.weights / MODELS[852].folder) in mr_state.reason
    assert "-t total_fast_mr " in mr_state.fix and "total_fast_mr" in TASK_TO_ID


def test_missing_weights_fail_in_one_line_naming_the_folder_and_leave_no_files(scans, monkeypatch, tmp_path, capsys):
    empty = tmp_path / "no_weights"
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(empty))
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "prosector"))
    engine, ct = TotalSegEngine(), scans[0]
    with pytest.raises(RuntimeFailure) as refused:
        engine.segment(ct, ["liver"], SegmentOptions(device="cpu", extra={"allow_download": False}))
    assert str(empty / MODELS[297].folder) in str(refused.value) and "\n" not in str(refused.value)
    # Download allowed but no network: TotalSegmentator tries (the guard sees it), we report and clean up.
    with InetGuard() as guard, pytest.raises(RuntimeFailure) as failed:
        engine.segment(ct, ["liver"], SegmentOptions(device="cpu", extra={"roi_subset": False}))
    assert guard.attempts and "github.com" in guard.attempts[0]
    message = failed.value.user_message()
    assert "could not be downloaded" in message and str(empty / MODELS[297].folder) in message
    assert "\n" not in message
    assert not empty.exists()
    assert json.loads((tmp_path / "home" / "config.json").read_text())["send_usage_stats"] is False
    assert "downloading weights for task total (fast)" in capsys.readouterr().err  # said before it tried


def test_structure_lookup_across_class_maps_and_bad_requests(scans):
    engine, (ct, mr) = TotalSegEngine(), scans
    assert len(engine.vocabulary("ct")) == 117 and len(engine.vocabulary("mr")) == 50
    assert engine.vocabulary("pet") == set() and not engine.covers("liver", "pet")
    assert "subcutaneous_fat" not in engine.vocabulary("ct") and engine.covers("subcutaneous_fat", "ct")
    assert [(l.task, l.cls) for l in locate("subcutaneous_fat", "mr")][0] == ("tissue_types_mr", "subcutaneous_fat")
    assert locate("liver", "ct")[0].task == "total" and locate("liver", "mr")[0].task == "total_mr"
    assert not engine.covers("lung_upper_lobe_left", "mr")
    with pytest.raises(InputError, match="only for CT"):
        engine.segment(mr, ["lung_upper_lobe_left"], SegmentOptions(device="cpu"))
    with pytest.raises(InputError, match="no class named 'hippocampus_x'"):
        engine.segment(ct, ["hippocampus_x"], SegmentOptions(device="cpu"))
    with pytest.raises(InputError, match="task total_mr reads MR"):
        engine.segment(ct, ["liver"], SegmentOptions(device="cpu", extra={"tasks": {"liver": [{"task": "total_mr", "class": "liver"}]}}))
    with pytest.raises(InputError, match="no class 'lever'"):
        engine.segment(ct, ["liver"], SegmentOptions(device="cpu", extra={"tasks": {"liver": {"task": "total", "class": "lever"}}}))
    pet = load_scan(CT_SM, modality="pet")
    with pytest.raises(InputError, match="CT and MR, not PET"):
        engine.segment(pet, ["liver"])
    if not engine.device() == "cuda":
        with pytest.raises(InputError, match="no CUDA GPU"):
            engine.segment(ct, ["liver"], SegmentOptions(device="cuda"))
        assert engine.cost == "high"


def test_router_runs_totalseg_once_and_answers_a_covered_request_from_its_cache(runs):
    assert [log.cached for log in runs["whole_logs"]] == [False]
    assert runs["whole_logs"][0].engine == "totalseg" and runs["whole_logs"][0].device == "cpu"
    assert [log.cached for log in runs["again_logs"]] == [True]
    whole = {m.name: m for m in runs["whole"]}
    for mask in runs["again"]:
        assert mask.provenance["cached"] is True and mask.provenance["task"] == "total"
        assert np.array_equal(mask.data, whole[mask.name].data)
    assert runs["again_seconds"] < 2.0  # read from disk, TotalSegmentator not started (a run takes > 10 s)


def test_a_failure_inside_totalsegmentator_is_one_line_naming_the_task(fixture_env, scans, monkeypatch, tmp_path):
    import shutil
    broken = tmp_path / "weights"
    shutil.copytree(fixture_env["weights"] / MODELS[297].folder, broken / MODELS[297].folder)
    checkpoint = next((broken / MODELS[297].folder).rglob("checkpoint_final.pth"))
    checkpoint.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(broken))
    monkeypatch.setenv("PROSECTOR_HOME", str(tmp_path / "prosector"))
    with InetGuard() as guard, pytest.raises(RuntimeFailure) as failed:
        TotalSegEngine().segment(scans[0], ["liver"], SegmentOptions(device="cpu", extra={"roi_subset": False}))
    message = failed.value.user_message()
    assert "TotalSegmentator failed on task total" in message and "\n" not in message
    assert str(CT_SM) in message
    assert guard.attempts == []
