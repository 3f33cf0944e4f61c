"""The router: engine choice with reasons, one run per engine, cache hits, honest failures."""
from __future__ import annotations

import numpy as np
import pytest

from prosector.errors import InputError, RuntimeFailure
from prosector.io import load_scan
from prosector.models.base import Engine, Readiness
from prosector.models.cache import MaskCache
from prosector.models.classical import ClassicalEngine
from prosector.models.precomputed import PrecomputedEngine
from prosector.models.router import Router
from tests.conftest import TOTALSEG

CT = TOTALSEG / "example_ct.nii.gz"
SEG = TOTALSEG / "example_seg_fast_force_split.nii.gz"


class CountingEngine(Engine):
    """A real engine (classical) wrapped to count how often it actually runs."""

    name = "classical"

    def __init__(self, fail: bool = False):
        self.inner, self.calls, self.fail = ClassicalEngine(), [], fail

    def vocabulary(self, modality):
        return self.inner.vocabulary(modality)

    def readiness(self):
        return self.inner.readiness()

    def segment(self, scan, structures, options=None):
        self.calls.append(list(structures))
        if self.fail:
            raise ValueError("out of memory in step 3")
        return self.inner.segment(scan, structures, options)


class NotReady(Engine):
    name = "totalseg"

    def vocabulary(self, modality):
        return {"liver", "lung_left"} if modality == "ct" else set()

    def readiness(self):
        return Readiness(False, "weights folder /x/nnUNet missing", "copy the weights there")

    def segment(self, scan, structures, options=None):
        raise AssertionError("must not run")


@pytest.fixture(scope="module")
def scan():
    return load_scan(CT)


def test_preference_and_reasons(scan):
    router = Router({"precomputed": PrecomputedEngine(SEG), "totalseg": NotReady(), "classical": CountingEngine()})
    plan = router.plan(scan, ["liver", "lung_left", "body"])
    by = {c.structure: c for c in plan.choices}
    assert by["liver"].engine == "precomputed"
    assert "not ready" in by["liver"].considered["totalseg"]
    # the user's segmentation holds lung lobes, not a whole left lung: classical does that one
    assert by["lung_left"].engine == "classical"
    assert "not ready" in by["lung_left"].considered["totalseg"]
    assert by["body"].engine == "classical"
    masks, logs = router.run(scan, plan)
    assert [m.engine for m in masks] == ["precomputed", "classical", "classical"]
    assert [log.engine for log in logs] == ["precomputed", "classical"]
    unready = Router({"totalseg": NotReady(), "classical": CountingEngine()})
    with pytest.raises(InputError, match="liver: totalseg could segment it but is not ready: weights folder /x/nnUNet missing"):
        unready.run(scan, unready.plan(scan, ["liver"]))


def test_forced_engine_that_cannot(scan):
    router = Router({"classical": CountingEngine(), "totalseg": NotReady()})
    plan = router.plan(scan, ["lung_left"], force="totalseg")
    assert plan.unroutable and plan.choices[0].reason == "no ready engine segments it on this modality"
    with pytest.raises(InputError, match="engine 'sat' is not available"):
        router.plan(scan, ["lung_left"], force="sat")


def test_each_engine_runs_once_and_the_cache_answers_later_requests(scan, tmp_path):
    engine = CountingEngine()
    router = Router({"classical": engine}, cache=MaskCache(tmp_path))
    masks, logs = router.run(scan, router.plan(scan, ["lung_left", "lung_right"]))
    assert engine.calls == [["lung_left", "lung_right"]] and not logs[0].cached
    again, logs = Router({"classical": engine}, cache=MaskCache(tmp_path)).run(scan, router.plan(scan, ["lung_right"]))
    assert engine.calls == [["lung_left", "lung_right"]] and logs[0].cached
    assert np.array_equal(again[0].data, masks[1].data) and again[0].provenance["cached"] is True
    assert again[0].data.shape == scan.shape


def test_engine_crash_is_one_honest_line(scan):
    router = Router({"classical": CountingEngine(fail=True)})
    with pytest.raises(RuntimeFailure, match="engine classical failed on body: ValueError: out of memory in step 3"):
        router.run(scan, router.plan(scan, ["body"]))


def test_tree_names_exactly_the_classical_engines_structures():
    """The anatomy tree says which concepts the classical engine segments; both must agree."""
    from prosector.knowledge import load_tree

    tree = load_tree()
    named = {n for c in tree for n in c.engines.get("classical", [])}
    assert named == ClassicalEngine().vocabulary("ct")
    for concept in tree:
        for name in concept.engines.get("classical", []):
            assert name == concept.id  # the router asks engines for concept ids
