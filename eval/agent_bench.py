"""Agent timings: seconds per chat turn with cached masks (offline planner; target < 300 ms) and per report.

    python eval/agent_bench.py [--repeats 20] [--image CT --seg SEG]

Runs in a throwaway PROSECTOR_HOME. Prints, per question type, the median and 90th percentile of
warm turns (masks and measurements already in the session), the cold first turn (which reads the
segmentation and measures), and the cold and warm report times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "totalsegmentator"
QUESTIONS = [
    ("volume", "How big is the spleen?"),
    ("normal", "Is the spleen enlarged?"),
    ("compare", "Which kidney is bigger?"),
    ("density", "What is the liver attenuation compared with the spleen?"),
    ("presence", "Is the brain in the scan?"),
    ("count", "How many lumbar vertebrae are visible?"),
    ("extent", "How long is the liver?"),
    ("segment", "Segment the left adrenal gland"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DATA / "example_ct.nii.gz"))
    parser.add_argument("--seg", default=str(DATA / "example_seg_fast_force_split.nii.gz"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    os.environ["PROSECTOR_HOME"] = tempfile.mkdtemp(prefix="prosector_bench_")
    os.environ.pop("PROSECTOR_LLM", None)

    from prosector.agent import Agent, Session

    started = time.perf_counter()
    session = Session.open("bench")
    session.load_scan(args.image, seg=args.seg)
    agent = Agent(session, llm="offline")
    print(f"load scan + open workspace: {time.perf_counter() - started:.3f} s")

    print(f"\n{'question':10} {'cold s':>8} {'warm median ms':>15} {'warm p90 ms':>12}")
    warm_all = []
    for kind, question in QUESTIONS:
        t = time.perf_counter()
        reply = agent.ask(question)
        cold = time.perf_counter() - t
        if reply.error:
            print(f"{kind}: error: {reply.error}", file=sys.stderr)
            return 1
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            agent.ask(question)
            times.append(time.perf_counter() - t)
        warm_all += times
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{kind:10} {cold:8.3f} {1000 * statistics.median(times):15.1f} {1000 * p90:12.1f}")
    print(f"\nall warm turns: median {1000 * statistics.median(warm_all):.1f} ms, "
          f"max {1000 * max(warm_all):.1f} ms (target < 300 ms)")

    for region in ("abdomen", None):
        t = time.perf_counter()
        agent.report(region)
        cold = time.perf_counter() - t
        times = []
        for _ in range(max(3, args.repeats // 4)):
            t = time.perf_counter()
            agent.report(region)
            times.append(time.perf_counter() - t)
        print(f"report {region or 'whole scan':10}: first {cold:.3f} s, cached median {statistics.median(times):.3f} s")

    # A restarted process: the workspace is read back (scan re-read from its file), nothing recomputed.
    import subprocess

    code = ("import sys, time; t = time.perf_counter(); from prosector.agent import Agent, Session; "
            "r = Agent(Session.open('bench'), llm='offline').ask('Which kidney is bigger?'); "
            "assert r.error is None, r.error; print(round(time.perf_counter() - t, 3)); "
            "print(sorted(m for m in ('torch', 'transformers', 'langchain_core') if m in sys.modules) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, modules = out.stdout.split("\n")[:2]
    print(f"\nrestarted process, first turn from the workspace (imports + scan re-read): {seconds} s; "
          f"model frameworks imported: {modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
