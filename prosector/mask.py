"""A Mask: boolean voxels on a scan's grid, the concept they stand for, and where they came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Mask:
    """One structure on one scan. `data` has exactly the scan's array shape (first three axes)."""

    name: str                    # the structure's id (TotalSegmentator class name where one exists)
    data: np.ndarray             # bool, scan.data.shape[:3]
    engine: str                  # which engine made it: precomputed, classical, totalseg, sat, medsam
    provenance: dict[str, Any] = field(default_factory=dict)  # weights, version, device, seconds, source file
    label: str | None = None     # human-readable name, if different from `name`

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=bool)

    @property
    def empty(self) -> bool:
        """An empty mask means the structure is not in the field of view (kept, not dropped)."""
        return not bool(self.data.any())

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.data))
