"""Adipose tissue (total, subcutaneous, torso) and skeletal muscle of the trunk.

The trunk wall (muscle, ribs, spine) encloses a cavity; fat inside it is torso fat, fat between
it and the skin is subcutaneous. The wall is found per axial slice as the thick non-fat tissue
under the skin, its gaps bridged by a closing, and what it encloses filled in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from . import hu
from .morphology import closing, depth_mm, erode, fill_holes_per_slice, opening

# The skin and its partial-volume edge, peeled off before looking for the trunk wall.
SKIN_MM = 3.0
# Fibrous septa crossing subcutaneous fat (1-2 mm) are thinner than twice this; flank muscles
# (5-10 mm) and organs are thicker. At 3 mm voxels it is the smallest opening, a 3x3 cross.
SEPTUM_MM = 3.0
# Gaps in the trunk wall up to twice this wide (linea alba, thin flank muscle between the
# quadratus lumborum and the obliques) are bridged. (12 mm left the flanks open on example_ct_sm.)
WALL_GAP_MM = 18.0
# Muscle of the trunk wall lies within this depth of the cavity's edge: the edge already runs
# along the muscle's outer face, and a lean adult's rectus or flank layer is about 1 cm thick;
# deeper lie the organs that touch the wall (liver, heart). 15 mm took in their surfaces on
# example_ct_sm (muscle Dice 0.75 against 0.78 at 10 mm).
WALL_DEPTH_MM = 10.0
# Paraspinal muscles (erector spinae, multifidus) lie behind the spine within this distance of
# the midline; wider, the box takes in the posterior liver and kidneys.
PARASPINAL_HALF_WIDTH_MM = 60.0
# Bone within this distance of the midline is taken as the spine when locating the paraspinal region.
SPINE_HALF_WIDTH_MM = 30.0
# The spinal canal (cord and CSF in the muscle HU range) lies within this of the spine's centre.
SPINAL_CANAL_HALF_WIDTH_MM = 10.0
SPINAL_CANAL_DEPTH_MM = 20.0


@dataclass
class Tissues:
    adipose: np.ndarray
    cavity: np.ndarray   # what the trunk wall encloses, wall included
    thick: np.ndarray    # non-fat tissue under the skin thicker than a septum


def adipose_and_cavity(ras_hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> Tissues:
    fat = (ras_hu >= hu.FAT_MIN) & (ras_hu <= hu.FAT_MAX) & body
    under_skin = erode(body, SKIN_MM, spacing)
    non_fat = under_skin & ~fat
    thick = opening(non_fat, SEPTUM_MM, spacing)
    wall = closing(thick, WALL_GAP_MM, spacing)
    cavity = fill_holes_per_slice(wall) & body
    return Tissues(adipose=fat, cavity=cavity, thick=thick)


def skeletal_muscle(ras_hu: np.ndarray, tissues: Tissues, bone: np.ndarray, spacing: np.ndarray,
                    world_x: np.ndarray, midline_x: float, world_y: np.ndarray) -> np.ndarray:
    """Muscle-range voxels of the trunk wall: a band under the cavity's edge, the paraspinal
    region, and the thick tissue embedded in the subcutaneous layer (latissimus, serratus, pectoral)."""
    muscle_hu = (ras_hu >= hu.MUSCLE_MIN) & (ras_hu <= hu.MUSCLE_MAX) & ~bone
    cavity = tissues.cavity
    band = depth_mm(cavity, spacing) <= WALL_DEPTH_MM
    inside = cavity & (band | _paraspinal(bone, world_x, midline_x, world_y))
    outside = tissues.thick & ~cavity
    return muscle_hu & (inside | outside)


def _paraspinal(bone: np.ndarray, world_x: np.ndarray, midline_x: float, world_y: np.ndarray) -> np.ndarray:
    """Per slice: behind the vertebral body's centre, beside the spine but off its canal."""
    spine = bone & (np.abs(world_x - midline_x) <= SPINE_HALF_WIDTH_MM)
    region = np.zeros(bone.shape, dtype=bool)
    for k in np.flatnonzero(spine.any(axis=(0, 1))):
        x, y = world_x[:, :, k], world_y[:, :, k]
        # The spine's own centre, not the body's: a rotated patient keeps the canal on the spine.
        spine_x = float(np.mean(x[spine[:, :, k]]))
        spine_y = float(np.mean(y[spine[:, :, k]]))
        off_centre = np.abs(x - spine_x)
        canal = (off_centre <= SPINAL_CANAL_HALF_WIDTH_MM) & (y >= spine_y - SPINAL_CANAL_DEPTH_MM)
        region[:, :, k] = (y < spine_y) & (off_centre <= PARASPINAL_HALF_WIDTH_MM) & ~canal
    return region
