"""CPU cost of SAT inference: one 288x288x96 tile and a whole real CT, at SAT-Nano widths.

    python eval/sat_bench.py                # both parts, each in a fresh process
    python eval/sat_bench.py --part tile    # one tile only

Weights are random (the real ones cannot be had here): cost does not depend on their values.
Each part runs in its own process so that its peak RSS is its own. Reference on this 2-core
machine: 126-212 s and 14-15 GB per tile (../shared/fixtures/sat_parity/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sat_common import REPO, ensure_prosector, peak_rss_gb  # noqa: E402

CT = REPO.parent / "shared" / "data" / "totalsegmentator" / "example_ct.nii.gz"


def build(variant: str, n_queries: int):
    import torch

    ensure_prosector()
    from prosector.models.sat.config import CONFIGS
    from prosector.models.sat.model import SatModel

    torch.manual_seed(0)
    model = SatModel(CONFIGS[variant]).eval()
    queries = torch.randn(n_queries, model.config.query_dim)
    return model, queries


def part_tile(args) -> dict:
    import numpy as np

    from prosector.models.sat.inference import sliding_window

    model, queries = build(args.variant, args.queries)
    rss_model = peak_rss_gb()
    volume = np.random.default_rng(0).standard_normal((288, 288, 96)).astype(np.float32)
    t = time.perf_counter()
    acc = sliding_window(model, volume, queries, device="cpu")
    seconds = time.perf_counter() - t
    assert acc.tiles == 1
    return {"part": "tile", "seconds": round(seconds, 1), "peak_rss_gb": round(peak_rss_gb(), 2),
            "rss_after_model_gb": round(rss_model, 2)}


def part_ct(args) -> dict:
    from prosector.io import load_scan
    from prosector.models.sat.pipeline import run_sat

    model, queries = build(args.variant, args.queries)
    scan = load_scan(CT)
    ticks = []
    t = time.perf_counter()
    run = run_sat(model, scan, queries, device="cpu", progress=lambda f, m: ticks.append(time.perf_counter()))
    seconds = time.perf_counter() - t
    assert all(m.shape == scan.data.shape for m in run.masks)
    return {"part": "example_ct", "shape": list(scan.data.shape), "tiles": run.tiles, "seconds": round(seconds, 1),
            "seconds_per_tile": round(run.seconds["infer"] / run.tiles, 1),
            "stages_s": {k: round(v, 1) for k, v in run.seconds.items()}, "peak_rss_gb": round(peak_rss_gb(), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["tile", "ct", "all"], default="all")
    parser.add_argument("--variant", default="nano", choices=["nano", "pro"])
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        result = {"tile": part_tile, "ct": part_ct}[args.part](args)
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds tell more than wall time on a machine shared with other work.
        result.update(variant=args.variant, queries=args.queries, threads=torch.get_num_threads(),
                      cpus=os.cpu_count(), torch=torch.__version__, cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
                      load_average=[round(x, 1) for x in os.getloadavg()])
        print(json.dumps(result))
        return
    for part in (["tile", "ct"] if args.part == "all" else [args.part]):
        cmd = [sys.executable, __file__, "--child", "--part", part, "--variant", args.variant, "--queries", str(args.queries)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{part}: failed (exit {out.returncode})\n{out.stderr[-2000:]}")
            continue
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
