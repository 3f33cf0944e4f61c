"""The `classical` engine: weight-free CT structures from HU thresholds and morphology."""
from __future__ import annotations

import time
from functools import cached_property

import numpy as np

from prosector.errors import InputError
from prosector.mask import Mask
from prosector.models.base import Engine, Readiness, SegmentOptions
from prosector.scan import Scan

from . import hu
from .body import body_mask
from .bone import bone_mask
from .lungs import ChestAir, segment_chest_air
from .noise import at_threshold_noise, smoothing_sigma_voxels
from .orientation import RasView
from .muscle import skeletal_muscle
from .tissue import Tissues, adipose_and_cavity

# Structure ids (TotalSegmentator's names where it has one) and their readable names.
STRUCTURES = {
    "body": "body",
    "lung_left": "left lung",
    "lung_right": "right lung",
    "trachea": "trachea and main bronchi",
    "bone": "bone",
    "fat": "adipose tissue (total)",
    "subcutaneous_fat": "subcutaneous fat",
    "torso_fat": "torso (visceral) fat",
    "skeletal_muscle": "skeletal muscle of the trunk",
}

# A CT in HU has air near -1000; a scan whose darkest voxels sit far above is not HU-calibrated
# (an MR, a PET, a CT stored without its rescale), and every threshold here would be wrong.
MAX_PLAUSIBLE_AIR_HU = -800.0


class ClassicalEngine(Engine):
    name = "classical"
    cost = "low"

    def vocabulary(self, modality: str) -> set[str]:
        return set(STRUCTURES) if modality.lower() == "ct" else set()

    def readiness(self) -> Readiness:
        return Readiness(ready=True, reason="needs no weights")

    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        options = options or SegmentOptions()
        _check_input(scan, structures)
        started = time.perf_counter()
        work = _Workbench(scan)
        masks: list[Mask] = []
        for done, structure in enumerate(structures):
            if options.progress:
                options.progress(done / len(structures), f"classical: {structure}")
            step = time.perf_counter()
            ras = work.structure(structure)
            masks.append(Mask(
                name=structure,
                data=work.view.from_ras(ras),
                engine=self.name,
                label=STRUCTURES[structure],
                provenance={
                    "engine": self.name,
                    "device": "cpu",
                    # Intermediates (body, cavity) are shared: a later structure can take 0 s.
                    "seconds_this_structure": round(time.perf_counter() - step, 3),
                    "thresholds": hu.as_provenance(),
                    # Thin-slice input is smoothed to the thresholds' noise level (classical.noise).
                    "smoothing_sigma_voxels": [round(float(v), 3) for v in smoothing_sigma_voxels(work.view.spacing)],
                    "orientation": scan.orientation,
                },
            ))
        total = round(time.perf_counter() - started, 3)
        for mask in masks:
            mask.provenance["seconds"] = total
            mask.provenance["notes"] = list(work.notes)
        if options.progress:
            options.progress(1.0, "classical: done")
        return masks


def _check_input(scan: Scan, structures: list[str]) -> None:
    where = str(scan.provenance.path) if scan.provenance else None
    if scan.modality.lower() != "ct":
        raise InputError(f"the classical engine reads CT in Hounsfield units, not {scan.modality.upper()}", path=where)
    if scan.is_2d or scan.data.ndim < 3 or min(scan.data.shape[:3]) < 2:
        raise InputError(f"the classical engine needs a 3D CT volume, got shape {tuple(scan.data.shape)}", path=where)
    unknown = [s for s in structures if s not in STRUCTURES]
    if unknown:
        raise InputError(f"the classical engine cannot segment {', '.join(unknown)}; it knows {', '.join(STRUCTURES)}", path=where)
    volume = scan.data[..., 0] if scan.data.ndim > 3 else scan.data
    step = max(1, int(round((volume.size / 2_000_000) ** (1 / 3))))  # a subsample settles a percentile
    darkest = float(np.percentile(volume[::step, ::step, ::step], 0.5))
    if darkest > MAX_PLAUSIBLE_AIR_HU:
        raise InputError(f"voxel values do not look like Hounsfield units (0.5th percentile {darkest:.0f}, "
                         f"air should be near -1000): is this really a CT?", path=where)


def _compact_hu(data: np.ndarray) -> np.ndarray:
    """HU in the smallest exact type: int16 for integer data in range (a quarter of float64's
    memory), float32 otherwise (exact for integers up to 2**24)."""
    if np.issubdtype(data.dtype, np.integer) and data.size:
        if np.iinfo(np.int16).min <= int(data.min()) and int(data.max()) <= np.iinfo(np.int16).max:
            return data.astype(np.int16, copy=False)
    return data.astype(np.float32, copy=False)


class _Workbench:
    """One scan's RAS view and the intermediate masks, each computed once and only when asked."""

    def __init__(self, scan: Scan):
        data = scan.data[..., 0] if scan.data.ndim > 3 else scan.data
        self.view = RasView.of(np.asarray(scan.affine, float), data.shape)
        self.hu = at_threshold_noise(self.view.to_ras(_compact_hu(np.asarray(data))), self.view.spacing)
        self.notes: list[str] = []

    def structure(self, name: str) -> np.ndarray:
        return {
            "body": lambda: self.body,
            "lung_left": lambda: self.chest.lung_left,
            "lung_right": lambda: self.chest.lung_right,
            "trachea": lambda: self.chest.airway,
            "bone": lambda: self.bone,
            "fat": lambda: self.tissues.adipose,
            "subcutaneous_fat": lambda: self.tissues.adipose & ~self.tissues.cavity,
            "torso_fat": lambda: self.tissues.adipose & self.tissues.cavity,
            "skeletal_muscle": lambda: self.muscle,
        }[name]()

    @cached_property
    def body(self) -> np.ndarray:
        return body_mask(self.hu, self.view.spacing)

    @cached_property
    def chest(self) -> ChestAir:
        chest = segment_chest_air(self.hu, self.body, self.view)
        self.notes.extend(chest.notes)
        return chest

    @cached_property
    def bone(self) -> np.ndarray:
        return bone_mask(self.hu, self.body, self.view.spacing)

    @cached_property
    def tissues(self) -> Tissues:
        return adipose_and_cavity(self.hu, self.body, self.view.spacing)

    @cached_property
    def muscle(self) -> np.ndarray:
        return skeletal_muscle(self.hu, self.tissues, self.bone, self.view, self.chest.midline_x_mm)
