"""Adipose tissue (total, subcutaneous, torso) and skeletal muscle of the trunk.

The trunk wall (muscle, ribs, spine) encloses a cavity; fat inside it is torso fat, fat between
it and the skin is subcutaneous. The wall is found per axial slice as the thick non-fat tissue
under the skin, its gaps bridged by a closing, and what it encloses filled in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

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
# The psoas runs beside the vertebral bodies and their discs (which are below bone HU), between
# these distances of the spine's centre.
VERTEBRAL_BODY_HALF_WIDTH_MM = 20.0
PSOAS_HALF_WIDTH_MM = 55.0
# A slice's bone rings the trunk (ribs, pelvis) when its convex hull covers this share of the image.
HULL_MIN_SHARE_OF_SLICE = 0.15


@dataclass
class Tissues:
    adipose: np.ndarray
    cavity: np.ndarray   # what the trunk wall encloses, wall included
    thick: np.ndarray    # non-fat tissue under the skin thicker than a septum


def adipose_and_cavity(ras_hu: np.ndarray, body: np.ndarray, spacing: np.ndarray) -> Tissues:
    fat = (ras_hu >= hu.FAT_MIN) & (ras_hu <= hu.FAT_MAX) & body
    # Gas (-1000) and tissue (~40) sharing a voxel average into the fat range: the rim of every
    # bowel-gas pocket and lung base would pass for fat. A voxel touching gas is not counted.
    gas = (ras_hu < hu.AIR_MAX) & body
    fat &= ~ndi.binary_dilation(gas, structure=ndi.generate_binary_structure(3, 2))
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
    inside = cavity & (band | _around_spine(bone, cavity, world_x, midline_x, world_y) | _behind_bone_hull(bone, world_y))
    outside = tissues.thick & ~cavity
    return muscle_hu & (inside | outside)


def _around_spine(bone: np.ndarray, cavity: np.ndarray, world_x: np.ndarray, midline_x: float,
                  world_y: np.ndarray) -> np.ndarray:
    """Per slice: the paraspinal muscles behind the spine's centre (off its canal) and the psoas
    beside the vertebral body (off the disc), as far forward as the body's front edge."""
    spine = bone & (np.abs(world_x - midline_x) <= SPINE_HALF_WIDTH_MM)
    region = np.zeros(bone.shape, dtype=bool)
    for k in np.flatnonzero(spine.any(axis=(0, 1)) & cavity.any(axis=(0, 1))):
        x, y = world_x[:, :, k], world_y[:, :, k]
        # The spine is in the back half of the trunk; midline bone in front is the pubis or sternum.
        spine_here = spine[:, :, k] & (y < float(np.mean(y[cavity[:, :, k]])))
        if not spine_here.any():
            continue
        # The spine's own centre, not the body's: a rotated patient keeps the canal on the spine.
        spine_x = float(np.mean(x[spine_here]))
        spine_y = float(np.mean(y[spine_here]))
        front_y = float(np.max(y[spine_here]))
        off_centre = np.abs(x - spine_x)
        canal = (off_centre <= SPINAL_CANAL_HALF_WIDTH_MM) & (y >= spine_y - SPINAL_CANAL_DEPTH_MM)
        paraspinal = (y < spine_y) & (off_centre <= PARASPINAL_HALF_WIDTH_MM) & ~canal
        psoas = (y >= spine_y) & (y <= front_y) & (off_centre > VERTEBRAL_BODY_HALF_WIDTH_MM) & (off_centre <= PSOAS_HALF_WIDTH_MM)
        region[:, :, k] = paraspinal | psoas
    return region


def _behind_bone_hull(bone: np.ndarray, world_y: np.ndarray) -> np.ndarray:
    """Per slice where bone rings the trunk (ribs, pelvis): what lies outside the bone's convex
    hull and behind its centre is muscle-bearing wall (glutei, latissimus, serratus), while
    bowel in front of the iliac wings stays out."""
    region = np.zeros(bone.shape, dtype=bool)
    grid = np.stack(np.meshgrid(np.arange(bone.shape[0]), np.arange(bone.shape[1]), indexing="ij"), axis=-1).astype(np.float32)
    for k in np.flatnonzero(bone.any(axis=(0, 1))):
        points = np.argwhere(bone[:, :, k])
        if len(points) < 3 or np.ptp(points[:, 0]) == 0 or np.ptp(points[:, 1]) == 0:
            continue
        hull = ConvexHull(points)
        inside = np.all(grid @ hull.equations[:, :2].T.astype(np.float32) + hull.equations[:, 2].astype(np.float32) <= 1e-3, axis=-1)
        if inside.sum() < HULL_MIN_SHARE_OF_SLICE * inside.size:
            continue  # a lone vertebra: no ring of bone in this slice
        y = world_y[:, :, k]
        region[:, :, k] = ~inside & (y < float(np.mean(y[inside])))
    return region
