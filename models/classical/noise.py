"""Thin-slice CT brought to the noise level the HU thresholds assume.

Every threshold here was set on ~3 mm voxels. A 0.8 mm reconstruction of the same patient
carries several times that noise (a liver at 45 HU then spreads from -60 to 110), so fat and
muscle ranges would catch speckle. Smoothing each axis up to an effective resolution of
EFFECTIVE_RESOLUTION_MM restores the noise level; grids already that coarse are left untouched.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# The coarsest reconstruction a clinical CT commonly has; coarser voxels need no smoothing.
EFFECTIVE_RESOLUTION_MM = 2.5
# Air; anything darker is padding.
PADDING_AS_AIR_HU = -1024.0
# Gaussian full width at half maximum per standard deviation.
FWHM_PER_SIGMA = 2.3548


def smoothing_sigma_voxels(spacing: np.ndarray) -> np.ndarray:
    """Per axis, the Gaussian sigma (voxels) that widens a voxel to the effective resolution."""
    spacing = np.asarray(spacing, dtype=float)
    fwhm_mm = np.sqrt(np.clip(EFFECTIVE_RESOLUTION_MM ** 2 - spacing ** 2, 0.0, None))
    sigma = fwhm_mm / FWHM_PER_SIGMA / spacing
    # Under a quarter voxel the filter changes nothing that matters: leave such axes alone.
    return np.where(sigma > 0.25, sigma, 0.0)


def at_threshold_noise(hu: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """`hu` smoothed where its voxels are finer than the effective resolution, else as it is."""
    sigma = smoothing_sigma_voxels(spacing)
    if not np.any(sigma > 0):
        return hu
    # Values under air are scanner padding outside the reconstruction circle (-2048, -3024);
    # as air they cannot drag tissue cut by the circle's edge into the fat or air ranges.
    as_air = np.maximum(hu.astype(np.float32, copy=False), PADDING_AS_AIR_HU)
    return ndi.gaussian_filter(as_air, sigma=sigma, mode="nearest")
