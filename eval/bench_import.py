"""Benchmark: load example_ct_sm, import all 117 classes of example_seg_fast/, measure, export.

Prints seconds per step and peak memory (max RSS of this process). Run from the repository root:
    python eval/bench_import.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOTALSEG = REPO.parent / "shared" / "data" / "totalsegmentator"


def one_run(out_dir: Path) -> dict[str, float]:
    from prosector.io import load_scan
    from prosector.measure import measure
    from prosector.models.precomputed import PrecomputedEngine
    from prosector.api import import_segmentation

    times = {}
    t = time.perf_counter()
    scan = load_scan(TOTALSEG / "example_ct_sm.nii.gz")
    times["load scan"] = time.perf_counter() - t
    t = time.perf_counter()
    masks = PrecomputedEngine(TOTALSEG / "example_seg_fast").load(scan)
    times["import 117 masks"] = time.perf_counter() - t
    t = time.perf_counter()
    [measure(m, scan) for m in masks]
    times["measure 117 masks"] = time.perf_counter() - t
    t = time.perf_counter()
    import_segmentation(TOTALSEG / "example_ct_sm.nii.gz", TOTALSEG / "example_seg_fast", out_dir,
                        statistics=True)
    times["whole import-seg (load+import+measure+write all outputs)"] = time.perf_counter() - t
    assert len(masks) == 117
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            runs.append(one_run(Path(tmp) / f"run{i}"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for step in runs[0]:
        values = [r[step] for r in runs]
        print(f"{step:60s} median {statistics.median(values):7.3f} s  (min {min(values):.3f}, n={len(values)})")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
