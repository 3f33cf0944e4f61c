"""Lungs and airways: aerated parenchyma told apart from bowel gas, split into left and right by
world x, with the trachea and main bronchi grown from the airway's top in the chest."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from . import hu
from .morphology import components_by_size
from .orientation import RasView

# An air region smaller than this (mL) is not called lung: bowel-gas pockets and rims are.
MIN_LUNG_ML = 5.0
# A lung cut by the top of the field of view can be small (lung bases); one that is not cut
# (a chest CT holding the apices) is at least this large (mL).
MIN_UNCUT_LUNG_ML = 250.0
# Left/right: a lung region with more than this share on one side of the midline belongs to it.
ONE_SIDE_SHARE = 0.9
# How far (voxels) a touching left+right lung region is eroded at most to find its two halves.
MAX_SPLIT_EROSIONS = 6

# Trachea seed: a pure-gas section of the trachea's size near the midline, between the two lungs.
TRACHEA_AREA_CM2 = (1.0, 8.0)
TRACHEA_MAX_OFF_MIDLINE_MM = 30.0
TRACHEA_CLEARANCE_MM = 15.0         # lung must lie at least this far to either side of it
TRACHEA_SEARCH_DEPTH_MM = 80.0      # below the lung apices: the trachea is there in every adult
AIRWAY_LEAK_RATIO = 1.6             # growth this much larger than at the previous threshold: a leak
AIRWAY_MAX_ML = 250.0               # trachea + main bronchi lumens are far below this
AIRWAY_MIN_LENGTH_MM = 30.0         # shorter gas columns are not an airway
MAIN_BRONCHUS_MM = 40.0             # main bronchi kept this far below the carina
MIN_BRONCHUS_SECTION_MM2 = 20.0     # a fork counts when both branches are at least this wide


@dataclass
class ChestAir:
    """Everything the lung and airway segmentation found, on the RAS view."""

    lung_left: np.ndarray
    lung_right: np.ndarray
    airway: np.ndarray
    midline_x_mm: float
    notes: list[str]


def segment_chest_air(ras_hu: np.ndarray, body: np.ndarray, view: RasView) -> ChestAir:
    spacing = view.spacing
    voxel_ml = float(np.prod(spacing)) / 1000.0
    notes: list[str] = []
    air = (ras_hu < hu.AIR_MAX) & body
    lungs = _parenchyma_regions(ras_hu, air, voxel_ml)
    midline = _midline_x(body, lungs, view)
    airway = _airway(ras_hu, body, lungs, view, midline, notes)
    if airway.any():
        # The airway wall's partial-volume shell would otherwise join the lungs through the bronchi.
        lungs = _parenchyma_regions(ras_hu, air & ~ndi.binary_dilation(airway), voxel_ml)
    left, right = _split_left_right(lungs, view, midline, notes)
    return ChestAir(left, right, airway, midline, notes)


def _parenchyma_regions(ras_hu: np.ndarray, air: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Air regions that look like lung: parenchyma HU, almost no pure gas, cut by the top or large."""
    labels, sizes = components_by_size(air)
    lungs = np.zeros(air.shape, dtype=bool)
    top = air.shape[2]
    for index, box in enumerate(ndi.find_objects(labels)):
        volume_ml = float(sizes[index]) * voxel_ml
        if box is None or volume_ml < MIN_LUNG_ML:
            continue
        region = labels[box] == index + 1
        values = ras_hu[box][region]
        gas_share = float(np.mean(values < hu.PURE_GAS_MAX))
        gas_limit = (hu.LARGE_LUNG_MAX_PURE_GAS_FRACTION if volume_ml >= hu.LARGE_LUNG_ML
                     else hu.LUNG_MAX_PURE_GAS_FRACTION)
        cut_by_top = box[2].stop == top
        if (gas_share <= gas_limit and float(np.median(values)) <= hu.LUNG_MAX_MEDIAN
                and (cut_by_top or volume_ml >= MIN_UNCUT_LUNG_ML)):
            lungs[box] |= region
    return lungs


def _midline_x(body: np.ndarray, lungs: np.ndarray, view: RasView) -> float:
    """World x of the patient's midline: the body's mean x over the slices that hold lung."""
    slices = np.flatnonzero(lungs.any(axis=(0, 1)))
    part = body[:, :, slices] if slices.size else body
    total = int(part.sum())
    if total == 0:
        return 0.0
    # World x is affine in (i, j, k): its mean is the affine of the mean indices, got from
    # per-axis counts rather than a list of every body voxel.
    k_index = slices if slices.size else np.arange(body.shape[2])
    mean_index = [float(part.sum(axis=(1, 2)) @ np.arange(body.shape[0])) / total,
                  float(part.sum(axis=(0, 2)) @ np.arange(body.shape[1])) / total,
                  float(part.sum(axis=(0, 1)) @ k_index) / total]
    return float(view.affine[0, :3] @ np.array(mean_index) + view.affine[0, 3])


def _split_left_right(lungs: np.ndarray, view: RasView, midline: float,
                      notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Left lung has world x below the midline (RAS+: x grows toward the patient's right)."""
    left = np.zeros(lungs.shape, dtype=bool)
    right = np.zeros(lungs.shape, dtype=bool)
    labels, _ = components_by_size(lungs)
    for index, box in enumerate(ndi.find_objects(labels)):
        region = labels[box] == index + 1
        is_left = view.world_in(0, box) < midline
        share_left = float(np.mean(is_left[region]))
        if share_left >= ONE_SIDE_SHARE:
            left[box] |= region
        elif share_left <= 1 - ONE_SIDE_SHARE:
            right[box] |= region
        else:
            part_left = _separate_touching(region, is_left, notes)
            left[box] |= region & part_left
            right[box] |= region & ~part_left
    return left, right


def _separate_touching(region: np.ndarray, is_left: np.ndarray, notes: list[str]) -> np.ndarray:
    """Where the lungs touch, erode until two halves part, then give each voxel to the nearer half."""
    eroded = region
    for _ in range(MAX_SPLIT_EROSIONS):
        eroded = ndi.binary_erosion(eroded)
        labels, sizes = components_by_size(eroded)
        if sizes.size < 2:
            continue
        first, second = np.argsort(sizes)[::-1][:2] + 1
        if sizes[second - 1] < 0.05 * region.sum():
            continue
        left_a = np.mean(is_left[labels == first]) > 0.5
        left_b = np.mean(is_left[labels == second]) > 0.5
        if left_a == left_b:
            continue
        seeds = np.where(labels == first, first, 0) + np.where(labels == second, second, 0)
        _, nearest = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        owner = seeds[tuple(nearest)]
        return owner == (first if left_a else second)
    notes.append("lungs touch at the midline and did not part by erosion: split at the midline plane")
    return is_left


def _airway(ras_hu: np.ndarray, body: np.ndarray, lungs: np.ndarray, view: RasView,
            midline: float, notes: list[str]) -> np.ndarray:
    """Trachea and main bronchi: gas grown from a midline seed between the lungs, guarded against leaks."""
    empty = np.zeros(body.shape, dtype=bool)
    seed = _trachea_seed(ras_hu, body, lungs, view, midline)
    if seed is None:
        return empty
    voxel_ml = float(np.prod(view.spacing)) / 1000.0
    grown, previous = empty, 0
    for threshold in hu.AIRWAY_THRESHOLDS:
        labels, _ = ndi.label((ras_hu < threshold) & body)
        ids = np.unique(labels[seed])
        region = np.isin(labels, ids[ids > 0])
        size = int(region.sum())
        if size * voxel_ml > AIRWAY_MAX_ML or (previous and size > AIRWAY_LEAK_RATIO * previous):
            break
        grown, previous = region, size
    if not grown.any():
        return empty
    slices = np.flatnonzero(grown.any(axis=(0, 1)))
    if (slices[-1] - slices[0] + 1) * view.spacing[2] < AIRWAY_MIN_LENGTH_MM:
        notes.append("a midline gas column was too short to be the trachea")
        return empty
    seed_slice = int(np.flatnonzero(seed.any(axis=(0, 1)))[0])
    return _down_to_main_bronchi(grown, seed_slice, view.spacing)


def _trachea_seed(ras_hu: np.ndarray, body: np.ndarray, lungs: np.ndarray, view: RasView,
                  midline: float) -> np.ndarray | None:
    """Voxels of the trachea's section on the highest slice where it lies between both lungs."""
    lung_slices = np.flatnonzero(lungs.any(axis=(0, 1)))
    if lung_slices.size == 0:
        return None
    pixel_cm2 = float(view.spacing[0] * view.spacing[1]) / 100.0
    depth = int(round(TRACHEA_SEARCH_DEPTH_MM / view.spacing[2]))
    top = int(lung_slices[-1])
    for k in range(top, max(top - depth, int(lung_slices[0])) - 1, -1):
        world_x = view.plane(0, k, body.shape)
        lung_x = world_x[lungs[:, :, k]]
        if lung_x.size == 0 or lung_x.min() >= midline or lung_x.max() <= midline:
            continue
        # Not `~lungs`: the trachea is often part of the lung region, joined through the bronchi.
        labels, sizes = components_by_size((ras_hu[:, :, k] < hu.AIRWAY_THRESHOLDS[-1]) & body[:, :, k])
        best, best_offset = None, TRACHEA_MAX_OFF_MIDLINE_MM
        for index in range(sizes.size):
            if not TRACHEA_AREA_CM2[0] <= sizes[index] * pixel_cm2 <= TRACHEA_AREA_CM2[1]:
                continue
            section = labels == index + 1
            # A lumen is pure gas; clusters of dark parenchyma at the lung's edge are not.
            if float(np.median(ras_hu[:, :, k][section])) >= hu.PURE_GAS_MAX:
                continue
            centre = float(world_x[section].mean())
            offset = abs(centre - midline)
            other_lung_x = world_x[lungs[:, :, k] & ~section]
            between = bool((other_lung_x < centre - TRACHEA_CLEARANCE_MM).any()
                           and (other_lung_x > centre + TRACHEA_CLEARANCE_MM).any())
            if between and offset < best_offset:
                best, best_offset = section, offset
        if best is not None:
            seed = np.zeros(body.shape, dtype=bool)
            seed[:, :, k] = best
            return seed
    return None


def _down_to_main_bronchi(airway: np.ndarray, seed_slice: int, spacing: np.ndarray) -> np.ndarray:
    """Cut the airway tree a main-bronchus length below the carina: the first slice below the
    seed (in the chest; the larynx above can hold several air pockets) where the lumen forks."""
    pixel_mm2 = float(spacing[0] * spacing[1])
    for k in range(seed_slice, -1, -1):
        _, sizes = components_by_size(airway[:, :, k])
        if (sizes * pixel_mm2 >= MIN_BRONCHUS_SECTION_MM2).sum() >= 2:
            lowest = max(0, int(k - round(MAIN_BRONCHUS_MM / float(spacing[2]))))
            cut = airway.copy()
            cut[:, :, :lowest] = False
            return cut
    return airway
