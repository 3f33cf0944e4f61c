"""Hounsfield-unit ranges the classical engine rests on, each with the reason it holds.

Values are for calibrated CT (water 0 HU, air -1000 HU). They are read by the segmenters and
recorded in every mask's provenance, so a reader can see which numbers made a mask.
"""
from __future__ import annotations

# Skin/air boundary: the midpoint between air (-1000) and soft tissue (~0), i.e. where a voxel
# is half patient, half room air; the scanner table's foam core and blankets stay below it.
BODY_MIN = -500

# Aerated spaces (lung, airways, bowel gas): below -400 a voxel is mostly gas. Lung bases at
# 3 mm are thin crescents whose partial-volume rim reaches -500..-400, so a stricter cut loses them.
AIR_MAX = -400

# Pure gas: a voxel below -950 holds no tissue. Bowel, stomach and airway lumens have a core of
# such voxels; aerated lung parenchyma (about -850) rarely does (LAA-950 is the emphysema index).
PURE_GAS_MAX = -950

# Share of pure-gas voxels above which an air region is a lumen (bowel, stomach), not lung;
# normal parenchyma measures ~0 %, the smallest bowel-gas pockets in example_ct 6 %.
LUNG_MAX_PURE_GAS_FRACTION = 0.05
# Aerated parenchyma has a median near -850 HU; an air region whose median sits near the cut is
# the partial-volume rim of fat or tissue beside gas, not lung.
LUNG_MAX_MEDIAN = -600

# Emphysematous lungs can exceed that share; regions this large (mL) are allowed up to the next.
LARGE_LUNG_ML = 500.0
LARGE_LUNG_MAX_PURE_GAS_FRACTION = 0.5

# Airway lumen: trachea and main bronchi are grown from a seed through voxels below each value
# in turn, from pure gas (where the lumen is whole despite noise) up toward parenchyma's -850,
# stopping before the step at which the growth leaks into the lungs.
AIRWAY_THRESHOLDS = (-950, -940, -930, -920, -910, -900)

# Adipose tissue: -190..-30 HU, the range of the CT body-composition literature
# (Kvist 1988; Yoshizumi 1999) and of TotalSegmentator's tissue_types training labels.
FAT_MIN = -190
FAT_MAX = -30

# Skeletal muscle: -29..150 HU (Mitsiopoulos 1998), the range used for L3 sarcopenia indices.
MUSCLE_MIN = -29
MUSCLE_MAX = 150

# Bone cores: above 200 HU, over unenhanced soft tissue and blood (< 100) and the enhanced veins
# of a portal phase (~150-180), while every cortex and dense trabecular bone exceed it. (Arterial-
# phase contrast, 250+ HU, is beyond what a threshold can tell from bone.)
BONE_MIN = 200
# Trabecular bone and marrow in partial volume: above 100 HU, grown only from a core.
BONE_TRABECULAR_MIN = 100


def as_provenance() -> dict[str, float | tuple[int, ...]]:
    """Every threshold by name (HU, and the shares and volumes that go with them), for provenance."""
    return {name.lower(): value for name, value in globals().items() if name.isupper()}
