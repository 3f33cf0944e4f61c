"""Figures for the `classical` engine: Dice per structure against TotalSegmentator, seconds, memory.

Run from the repository root:  python eval/classical.py [--large]
References are TotalSegmentator's outputs in ../shared/data/totalsegmentator (a peer's output,
not manual ground truth). example_ct_sm's affine is a copy of the full scan's (see the data
README), so its references are compared by voxel index, never by world position.
"""
from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np

from prosector.models.classical import ClassicalEngine
from prosector.scan import Provenance, Scan

TOTALSEG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalsegmentator"
# TotalSegmentator `total` classes that are bone (costal cartilage is not: it is below 200 HU).
BONE_PREFIXES = ("vertebrae_", "rib_", "hip_", "femur_", "sacrum", "sternum", "humerus_", "scapula_",
                 "clavicula_", "skull")


def load_ct(path: Path) -> Scan:
    image = nib.load(str(path))
    return Scan(data=np.asanyarray(image.dataobj), affine=image.affine, modality="ct",
                provenance=Provenance(path=str(path), format="nifti"), nifti_header=image.header)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def reference_total(names: list[str]) -> np.ndarray:
    """Union of the named `total` classes in example_seg_fast_force_split (on example_ct's grid)."""
    classes = json.loads((TOTALSEG / "labelmaps" / "class_map_head.json").read_text())["total"]
    labels = np.asanyarray(nib.load(str(TOTALSEG / "example_seg_fast_force_split.nii.gz")).dataobj)
    wanted = [int(index) for index, name in classes.items() if name in names]
    return np.isin(labels, wanted)


def class_names(predicate) -> list[str]:
    classes = json.loads((TOTALSEG / "labelmaps" / "class_map_head.json").read_text())["total"]
    return [name for name in classes.values() if predicate(name)]


def tissue_reference(name: str) -> np.ndarray:
    return np.asanyarray(nib.load(str(TOTALSEG / "example_seg_tissue_types" / f"{name}.nii.gz")).dataobj) > 0


def main() -> int:
    engine = ClassicalEngine()
    rows: list[tuple[str, str, float, str]] = []

    # Tissue types on example_ct_sm (by voxel index: same array grid as its references).
    small = load_ct(TOTALSEG / "example_ct_sm.nii.gz")
    got = {m.name: m.data for m in engine.segment(small, ["fat", "subcutaneous_fat", "torso_fat", "skeletal_muscle"])}
    sub, torso, muscle = (tissue_reference(n) for n in ("subcutaneous_fat", "torso_fat", "skeletal_muscle"))
    rows.append(("example_ct_sm", "fat", dice(got["fat"], sub | torso), "subcutaneous_fat + torso_fat (target >= 0.85)"))
    rows.append(("example_ct_sm", "subcutaneous_fat", dice(got["subcutaneous_fat"], sub), "subcutaneous_fat"))
    rows.append(("example_ct_sm", "torso_fat", dice(got["torso_fat"], torso), "torso_fat"))
    rows.append(("example_ct_sm", "skeletal_muscle", dice(got["skeletal_muscle"], muscle), "skeletal_muscle"))

    # Lungs, bone and body on example_ct.
    full = load_ct(TOTALSEG / "example_ct.nii.gz")
    every = ["body", "lung_left", "lung_right", "trachea", "bone", "fat", "subcutaneous_fat", "torso_fat", "skeletal_muscle"]
    got = {m.name: m.data for m in engine.segment(full, every)}
    left_ref = reference_total(class_names(lambda n: n.startswith("lung_") and n.endswith("_left")))
    right_ref = reference_total(class_names(lambda n: n.startswith("lung_") and n.endswith("_right")))
    rows.append(("example_ct", "lungs", dice(got["lung_left"] | got["lung_right"], left_ref | right_ref), "union of lung lobes (target >= 0.80)"))
    rows.append(("example_ct", "lung_left", dice(got["lung_left"], left_ref), "left lung lobes"))
    rows.append(("example_ct", "lung_right", dice(got["lung_right"], right_ref), "right lung lobes"))
    rows.append(("example_ct", "bone", dice(got["bone"], reference_total(class_names(lambda n: n.startswith(BONE_PREFIXES)))), "union of bone classes"))
    trachea_ref = reference_total(["trachea"])
    rows.append(("example_ct", "trachea", dice(got["trachea"], trachea_ref),
                 f"trachea class ({int(trachea_ref.sum())} reference voxels, {int(got['trachea'].sum())} found)"))
    # Held out from the tissue tuning (done on example_ct_sm = slices 82-111): the slices below.
    below = np.zeros(full.data.shape, dtype=bool)
    below[:, :, :82] = True
    muscles = reference_total(class_names(lambda n: n.startswith(("autochthon_", "iliopsoas_", "gluteus_")))) & below
    organs = reference_total(["liver", "spleen", "kidney_left", "kidney_right", "stomach", "colon", "small_bowel",
                              "duodenum", "pancreas", "urinary_bladder", "aorta", "inferior_vena_cava"]) & below
    recall = float(np.logical_and(got["skeletal_muscle"], muscles).sum()) / max(1, int(muscles.sum()))
    organ_share = float(np.logical_and(got["skeletal_muscle"], organs).sum()) / max(1, int(organs.sum()))
    rows.append(("example_ct", "skeletal_muscle", float("nan"),
                 f"held out (slices 0-81): {recall:.3f} of autochthon/iliopsoas/gluteus voxels found, "
                 f"{organ_share:.3f} of organ voxels wrongly called muscle"))
    labelled = reference_total(class_names(lambda n: True))
    inside = float(np.logical_and(labelled, got["body"]).sum()) / max(1, int(labelled.sum()))
    rows.append(("example_ct", "body", float("nan"), f"no body reference; {inside:.4f} of all TotalSegmentator-labelled voxels lie inside it"))

    print("Dice against TotalSegmentator (../shared/data/totalsegmentator)")
    for scan, name, value, against in rows:
        shown = "   n/a" if np.isnan(value) else f"{value:6.3f}"
        print(f"  {scan:14s} {name:17s} {shown}  vs {against}")

    # Speed and memory: every structure on example_ct, timed after a warm-up run.
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        engine.segment(full, every)
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    engine.segment(full, every)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"example_ct {full.data.shape}, all {len(every)} structures: "
          f"{min(seconds):.2f} s best / {np.median(seconds):.2f} s median of {len(seconds)} "
          f"(target < 5 s); numpy peak during segment {traced_peak / 2**20:.0f} MiB, "
          f"process peak RSS {rss_mb:.0f} MiB (target < 2 GB)")
    if "--large" in sys.argv:
        time_large(engine, full, every)
    return 0


def time_large(engine: ClassicalEngine, full: Scan, every: list[str]) -> None:
    """Scaling: example_ct interpolated to 1 mm in-plane (a clinical-size slice, 12 M voxels)."""
    from scipy import ndimage

    zoom = (3.0, 3.0, 1.0)
    affine = full.affine.copy()
    affine[:3, :3] = affine[:3, :3] / np.array(zoom)
    large = Scan(data=ndimage.zoom(full.data.astype(np.int16), zoom, order=1), affine=affine, modality="ct",
                 provenance=Provenance(path=full.provenance.path + " at 1 mm in-plane", format="nifti"))
    start = time.perf_counter()
    engine.segment(large, every)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"example_ct at 1 mm in-plane {large.data.shape}: {time.perf_counter() - start:.1f} s, "
          f"process peak RSS {rss_mb:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
