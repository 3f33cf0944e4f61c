"""One SAT run on a scan: prepare, slide the window, bring each class back onto the scan's grid."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from prosector.scan import Scan

from .inference import choose_device, sliding_window
from .model import SatModel
from .preprocess import prepare


@dataclass
class SatRun:
    masks: list[np.ndarray]            # one bool array per query, scan.data.shape[:3]
    tiles: int
    device: str
    seconds: dict[str, float] = field(default_factory=dict)  # prepare, infer, map_back


def run_sat(model: SatModel, scan: Scan, queries: torch.Tensor, *, device: str = "auto",
            progress: Callable[[float, str], None] | None = None) -> SatRun:
    """Masks for the (N, d) `queries` on `scan`'s own grid."""
    dev = choose_device(device)
    t0 = time.perf_counter()
    prepared = prepare(scan)
    t1 = time.perf_counter()
    accumulated = sliding_window(model, prepared.volume, queries, device=dev, progress=progress)
    t2 = time.perf_counter()
    masks = [prepared.to_scan_grid(accumulated.probability(j)) for j in range(int(queries.shape[0]))]
    t3 = time.perf_counter()
    return SatRun(masks, accumulated.tiles, str(dev), {"prepare": t1 - t0, "infer": t2 - t1, "map_back": t3 - t2})
