"""Intensities onto the 0-255 display scale LiteMedSAM was trained on.

CT in HU gets a fixed soft-tissue window (W400/L40), the same on every slice so that a
structure looks alike as propagation walks through the volume. Other volumes (MR, PET, CT
stored without its rescale) get the 0.5-99.5 percentile range of the whole volume. 2D images
(PNG/JPEG) are already display pictures: their values are kept, because re-windowing a
picture clips its brightest structures (bone) for nothing.
"""
from __future__ import annotations

import numpy as np

from prosector.scan import Scan

CT_SOFT_TISSUE_WINDOW = (40.0, 400.0)  # level, width (HU)
PERCENTILES = (0.5, 99.5)
# Percentiles of a large volume cost seconds; a strided sample of this many voxels gives the same range.
PERCENTILE_SAMPLE = 2_000_000


def window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values clipped to [low, high] and mapped linearly to 0-255 (float32)."""
    span = max(float(high) - float(low), 1e-6)
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(low)) * np.float32(255.0 / span)
    return np.clip(scaled, 0.0, 255.0, out=scaled)


def display_range(scan: Scan) -> tuple[float, float] | None:
    """The intensity range mapped to 0-255 for this scan, or None to keep values as they are."""
    if scan.is_2d:
        return None
    if scan.modality.lower() == "ct":
        level, width = CT_SOFT_TISSUE_WINDOW
        return level - width / 2, level + width / 2
    return percentile_range(scan.data)


def percentile_range(values: np.ndarray) -> tuple[float, float]:
    flat = np.asarray(values).reshape(-1)
    step = max(1, flat.size // PERCENTILE_SAMPLE)
    low, high = np.percentile(flat[::step].astype(np.float32), PERCENTILES)
    return float(low), float(high)


def to_display(values: np.ndarray, intensity: str = "auto") -> np.ndarray:
    """One picture's values on the 0-255 scale, by rule: 'display' keeps them, 'ct' applies the
    soft-tissue window to HU, 'percentile' stretches the picture's own 0.5-99.5 % range; 'auto'
    keeps uint8 pictures and stretches anything else."""
    values = np.asarray(values)
    if intensity == "auto":
        intensity = "display" if values.dtype == np.uint8 else "percentile"
    if intensity == "display":
        return values.astype(np.float32)
    if intensity == "ct":
        level, width = CT_SOFT_TISSUE_WINDOW
        return window(values, level - width / 2, level + width / 2)
    if intensity == "percentile":
        return window(values, *percentile_range(values))
    raise ValueError(f"unknown intensity rule {intensity!r}: use auto, display, ct or percentile")
