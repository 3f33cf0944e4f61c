"""Router cache: seconds for a first request and for a later one the first run already covers.

    python eval/router_cache.py

Uses the classical engine on example_ct (needs no weights) and a fresh PROSECTOR_HOME.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CT = REPO.parent / "shared" / "data" / "totalsegmentator" / "example_ct.nii.gz"


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["PROSECTOR_HOME"] = home
        from prosector.io import load_scan
        from prosector.segmenting import build_router, segment_scan

        scan = load_scan(CT)
        t = time.perf_counter()
        first = segment_scan(scan, "left lung and right lung", router=build_router())
        first_s = time.perf_counter() - t
        assert not any(log.cached for log in first.logs)
        again = []
        for _ in range(5):
            t = time.perf_counter()
            second = segment_scan(scan, "right lung", router=build_router())  # a new router: only the disk cache
            again.append(time.perf_counter() - t)
            assert all(log.cached for log in second.logs)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    print(f"first request (classical, both lungs, computed): {first_s:.3f} s")
    print(f"second request (right lung, from the cache, new router): median {statistics.median(again):.3f} s "
          f"(min {min(again):.3f}, n={len(again)}; target < 0.3 s)")


if __name__ == "__main__":
    main()
