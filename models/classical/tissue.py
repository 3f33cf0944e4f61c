"""Adipose tissue (total, subcutaneous, torso) and the trunk cavity that tells them apart.

The trunk wall (muscle, ribs, spine) encloses a cavity; fat inside it is torso fat, fat between
it and the skin is subcutaneous. The wall is found per axial slice as the thick non-fat tissue
under the skin, its gaps bridged by a closing, and what it encloses filled in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hu
from .morphology import closing, erode, fill_holes_per_slice, opening, within

# The partial-volume rim around gas: about one voxel at the ~3 mm resolution the thresholds
# assume (noise.EFFECTIVE_RESOLUTION_MM); 18-connectivity gave nearly the same figures.
PARTIAL_VOLUME_MM = 3.0
# The skin and its partial-volume edge, peeled off before looking for the trunk wall.
SKIN_MM = 3.0
# Fibrous septa crossing subcutaneous fat (1-2 mm) are thinner than twice this; flank muscles
# (5-10 mm) and organs are thicker. At 3 mm voxels it is the smallest opening, a 3x3 cross.
SEPTUM_MM = 3.0
# Gaps in the trunk wall up to twice this wide (linea alba, thin flank muscle between the
# quadratus lumborum and the obliques) are bridged. (12 mm left the flanks open on example_ct_sm.)
WALL_GAP_MM = 18.0

@dataclass
class Tissues:
    adipose: np.ndarray
    cavity: np.ndarray   # what the trunk wall encloses, wall included
    thick: np.ndarray    # non-fat tissue under the skin thicker than a septum


def adipose_and_cavity(ras_hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> Tissues:
    fat = (ras_hu >= hu.FAT_MIN) & (ras_hu <= hu.FAT_MAX) & body
    # Gas (-1000) and tissue (~40) sharing a voxel average into the fat range: the rim of every
    # bowel-gas pocket and lung base would pass for fat. Voxels that close to gas are not counted.
    fat &= ~within((ras_hu < hu.AIR_MAX) & body, PARTIAL_VOLUME_MM, spacing)
    under_skin = erode(body, SKIN_MM, spacing)
    non_fat = under_skin & ~fat
    thick = opening(non_fat, SEPTUM_MM, spacing)
    wall = closing(thick, WALL_GAP_MM, spacing)
    cavity = fill_holes_per_slice(wall) & body
    return Tissues(adipose=fat, cavity=cavity, thick=thick)
