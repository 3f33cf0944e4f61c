"""What the `totalseg` engine costs on top of calling TotalSegmentator's Python API directly.

Both sides run the same tiny banded model folders (tests/totalseg_fixture.py, built here in a
temporary folder, offline) on the same CT with the same arguments: task `total`, fast, CPU,
multilabel, no statistics. The engine adds: the in-memory NIfTI, the config write, the
environment guard, the check that the result lies on the scan's grid, and one boolean mask per
structure. Runs alternate (direct, engine, direct, ...) after one warm-up each, so the machine's
background load hits both alike; medians are printed, and also the engine's own time outside the
TotalSegmentator call, which background load barely touches.

    python eval/totalseg_overhead.py [--runs 3] [--scan ../shared/data/totalsegmentator/example_ct_sm.nii.gz]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCAN = REPO.parent / "shared" / "data" / "totalsegmentator" / "example_ct_sm.nii.gz"
STRUCTURES = ["lung_lower_lobe_right", "colon", "liver", "vertebrae_L1"]
TARGET = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (after one warm-up each)")
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*torch.jit.interface.*")
    sys.path.insert(0, str(REPO / "tests"))
    from totalseg_fixture import InetGuard, build_weights, write_totalseg_config

    with tempfile.TemporaryDirectory(prefix="totalseg_overhead_") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        build_weights(tmp / "weights", task_ids=(297,))
        write_totalseg_config(tmp / "home")
        print(f"fixture built in {time.perf_counter() - started:.1f} s")
        os.environ.update(TOTALSEG_HOME_DIR=str(tmp / "home"), TOTALSEG_WEIGHTS_PATH=str(tmp / "weights"),
                          PROSECTOR_HOME=str(tmp / "prosector"))

        import nibabel as nib
        from totalsegmentator.python_api import totalsegmentator

        from prosector.io import load_scan
        from prosector.models.base import SegmentOptions
        from prosector.models.totalseg import TotalSegEngine

        scan = load_scan(args.scan, modality="ct")
        image = nib.load(str(args.scan))
        engine = TotalSegEngine()
        options = SegmentOptions(device=args.device, extra={"roi_subset": False, "fast": True})
        ts_device = "gpu" if args.device == "cuda" else "cpu"

        def direct() -> float:
            t = time.perf_counter()
            seg = totalsegmentator(image, None, ml=True, task="total", fast=True, device=ts_device,
                                   quiet=True, statistics=False, nr_thr_saving=1)
            _ = seg.get_fdata()  # the caller needs the voxels, as the engine does
            return time.perf_counter() - t

        def wrapped() -> tuple[float, float]:
            t = time.perf_counter()
            masks = engine.segment(scan, STRUCTURES, options)
            wall = time.perf_counter() - t
            return wall, wall - masks[0].provenance["seconds"]

        with InetGuard() as guard:
            print(f"warm-up: direct {direct():.1f} s, engine {wrapped()[0]:.1f} s")
            direct_s, engine_s, outside_s = [], [], []
            for i in range(args.runs):
                direct_s.append(direct())
                wall, outside = wrapped()
                engine_s.append(wall)
                outside_s.append(outside)
                print(f"run {i + 1}: direct {direct_s[-1]:.2f} s, engine {wall:.2f} s "
                      f"(of which outside TotalSegmentator {outside:.3f} s)")
        assert not guard.attempts, guard.attempts

    d, e, o = statistics.median(direct_s), statistics.median(engine_s), statistics.median(outside_s)
    print(f"scan {args.scan.name} {scan.data.shape}, {len(STRUCTURES)} structures, device {args.device}, "
          f"{os.cpu_count()} CPU cores")
    print(f"median direct API call : {d:.2f} s")
    print(f"median engine.segment  : {e:.2f} s")
    print(f"overhead (wall)        : {100 * (e - d) / d:+.1f} % (target < {100 * TARGET:.0f} %)")
    print(f"engine's own work      : {o:.3f} s = {100 * o / d:.1f} % of the direct call")
    return 0 if o / d < TARGET else 1


if __name__ == "__main__":  # nnU-Net starts spawn workers, which re-import this file
    sys.exit(main())
