"""SAT's sliding window: where the 288x288x96 tiles go and how overlapping tiles are weighted."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from .config import PATCH_SIZE


def axis_starts(n: int, crop: int) -> list[tuple[int, int]]:
    """[start, end) per tile along one axis: half-crop stride, the last tile snapped to the end."""
    half = crop // 2
    count = max(math.ceil(n / half) - 1, 1)
    out = []
    for i in range(count):
        start = i * half
        if start + crop > n:
            start = max(n - crop, 0)
        out.append((start, min(start + crop, n)))
    return out


def tiles(shape, crop=PATCH_SIZE) -> list[tuple[slice, slice, slice]]:
    """Every tile of a (H, W, D) volume, in the reference order (H slowest)."""
    per_axis = [axis_starts(int(n), int(c)) for n, c in zip(shape, crop)]
    return [
        (slice(*a), slice(*b), slice(*c))
        for a in per_axis[0]
        for b in per_axis[1]
        for c in per_axis[2]
    ]


@lru_cache(maxsize=4)
def gaussian_weights(size=PATCH_SIZE, sigma_scale: float = 1 / 8, peak: float = 10.0) -> np.ndarray:
    """The tile weight map: a centred Gaussian (sigma = size/8), max 10, in float16, no zeros.

    float16 and the zero replacement copy the reference, so tile borders weigh exactly as there.
    """
    delta = np.zeros(size, dtype=np.float64)
    delta[tuple(s // 2 for s in size)] = 1
    g = gaussian_filter(delta, [s * sigma_scale for s in size], 0, mode="constant", cval=0)
    g = (g / g.max() * peak).astype(np.float16)
    g[g == 0] = g[g != 0].min()  # zero weight would divide by zero where only a tile's edge reaches
    g.setflags(write=False)
    return g
