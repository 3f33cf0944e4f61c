"""Skeletal muscle of the trunk: muscle-range voxels where muscle lies relative to the trunk
wall, the spine and the bony rings (ribs, pelvis), since organs share muscle's HU range."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hu
from .morphology import axial_slices, depth_mm, from_axial_slices
from .orientation import RasView
from .tissue import Tissues

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
# Directions (per full turn) in which a slice's bone shadow is traced: 1 degree, a few mm of arc
# at the trunk wall, about one voxel.
SHADOW_DIRECTIONS = 360


def skeletal_muscle(ras_hu: np.ndarray, tissues: Tissues, bone: np.ndarray, view: RasView,
                    midline_x: float) -> np.ndarray:
    """Muscle-range voxels of the trunk wall: a band under the cavity's edge, the paraspinal and
    psoas regions, the shadow of the ribs and pelvis, and the thick tissue embedded in the
    subcutaneous layer (latissimus, serratus, pectoral)."""
    muscle_hu = (ras_hu >= hu.MUSCLE_MIN) & (ras_hu <= hu.MUSCLE_MAX) & ~bone
    cavity = tissues.cavity
    band = depth_mm(cavity, view.spacing) <= WALL_DEPTH_MM
    # Per-slice geometry runs on slice-first copies (see morphology.axial_slices).
    bone_planes, cavity_planes = axial_slices(bone), axial_slices(cavity)
    spine = _around_spine(bone_planes, cavity_planes, view, midline_x)
    shadow = from_axial_slices(_behind_bone(bone_planes, cavity_planes, view))
    inside = cavity & (band | from_axial_slices(spine.muscle) | shadow)
    outside = tissues.thick & ~cavity
    return muscle_hu & (inside | outside) & ~from_axial_slices(spine.canal)


@dataclass
class _SpineRegions:
    """Slice-first masks (axial slice index first)."""

    muscle: np.ndarray   # paraspinal muscles and psoas
    canal: np.ndarray    # the spinal canal: cord and CSF in the muscle HU range


def _around_spine(bone: np.ndarray, cavity: np.ndarray, view: RasView, midline_x: float) -> _SpineRegions:
    """Per slice: the paraspinal muscles behind the spine's centre (off its canal) and the psoas
    beside the vertebral body (off the disc), as far forward as the body's front edge."""
    regions = _SpineRegions(*(np.zeros(bone.shape, dtype=bool) for _ in range(2)))
    for k in np.flatnonzero(bone.any(axis=(1, 2)) & cavity.any(axis=(1, 2))):
        x, y = view.plane(0, k, bone.shape[1:]), view.plane(1, k, bone.shape[1:])
        # The spine is bone near the midline in the back half of the trunk; midline bone in front
        # is the pubis or sternum.
        centre_y = float(np.mean(y[cavity[k]]))
        spine_here = bone[k] & (np.abs(x - midline_x) <= SPINE_HALF_WIDTH_MM) & (y < centre_y)
        if not spine_here.any():
            continue
        # The spine's own centre, not the body's: a rotated patient keeps the canal on the spine.
        spine_x = float(np.mean(x[spine_here]))
        spine_y = float(np.mean(y[spine_here]))
        front_y = float(np.max(y[spine_here]))
        off_centre = np.abs(x - spine_x)
        canal = (off_centre <= SPINAL_CANAL_HALF_WIDTH_MM) & (y >= spine_y - SPINAL_CANAL_DEPTH_MM) & (y <= front_y)
        paraspinal = (y < spine_y) & (off_centre <= PARASPINAL_HALF_WIDTH_MM) & ~canal
        psoas = (y >= spine_y) & (y <= front_y) & (off_centre > VERTEBRAL_BODY_HALF_WIDTH_MM) & (off_centre <= PSOAS_HALF_WIDTH_MM)
        regions.muscle[k] = paraspinal | psoas
        regions.canal[k] = canal
    return regions


def _behind_bone(bone: np.ndarray, cavity: np.ndarray, view: RasView) -> np.ndarray:
    """Per slice, the bone's shadow seen from the trunk's centre: what lies farther out than the
    nearest bone in the same direction. Glutei behind the iliac wings, paraspinal muscle behind
    the spine, chest-wall muscle outside the ribs fall in it; organs inside the ring do not.
    Slice-first in and out."""
    region = np.zeros(bone.shape, dtype=bool)
    for k in np.flatnonzero(bone.any(axis=(1, 2)) & cavity.any(axis=(1, 2))):
        x, y = view.plane(0, k, bone.shape[1:]), view.plane(1, k, bone.shape[1:])
        inside = cavity[k]
        dx, dy = x - float(np.mean(x[inside])), y - float(np.mean(y[inside]))
        radius = np.hypot(dx, dy)
        direction = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * SHADOW_DIRECTIONS).astype(int) % SHADOW_DIRECTIONS
        nearest_bone = np.full(SHADOW_DIRECTIONS, np.inf)
        here = bone[k]
        np.minimum.at(nearest_bone, direction[here], radius[here])
        region[k] = (radius > nearest_bone[direction]) & ~here
    return region
