"""The body: everything of the patient, without the table, with enclosed air filled in."""
from __future__ import annotations

import numpy as np

from . import hu
from .morphology import components_by_size, fill_holes_per_slice, opening

# Opening radius that cuts the scanner table and blankets (a few mm thick) off the skin.
TABLE_CUT_MM = 4.0
# A separate piece counts as body (an arm at the side, the other leg) when it is at least this
# share of the largest piece; smaller pieces are table parts, cables, noise.
MIN_PART_OF_LARGEST = 0.05


def body_mask(ras_hu: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Bool mask of the patient on the RAS view: tissue above the skin/air midpoint, holes filled."""
    tissue = ras_hu > hu.BODY_MIN
    opened = opening(tissue, TABLE_CUT_MM, spacing)
    labels, sizes = components_by_size(opened)
    if sizes.size == 0:
        return np.zeros(ras_hu.shape, dtype=bool)
    keep = np.concatenate([[False], sizes >= MIN_PART_OF_LARGEST * sizes.max()])
    return fill_holes_per_slice(keep[labels])
