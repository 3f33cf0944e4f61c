"""Score free-text resolution on a query file (format of ../shared/queries/dev_queries.jsonl).

    python eval/terms.py [QUERIES.jsonl] [--modality ct] [--scope main] [--repeat 3]

Scoring (the file's README): a query is right when the union of the `leaves` of the returned
concepts equals `expect` exactly. The items encode the policy "unknown = nothing among the 117
classes of the `total` task", so the default scope is `main` (the modality's main task).
Prints exact-set accuracy overall and per kind, laterality items, unknown items with no concept,
debatable items apart, cold start and per-query latency (p50/p95 after warm-up), and the failures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_QUERIES = REPO.parent / "shared" / "queries" / "dev_queries.jsonl"


def has_side(leaves) -> bool:
    return any("left" in leaf.split("_") or "right" in leaf.split("_") for leaf in leaves)


def pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:5.1f} % ({num}/{den})" if den else "  n/a"


COLD_START = """
import time
t0 = time.perf_counter()
from prosector.knowledge import resolve
from prosector.knowledge.resolver import default_resolver
semantic = default_resolver().semantic()
if semantic is not None:
    semantic.encoder                      # the model itself, not only the index
resolve({query!r}, modality={modality!r}, scope={scope!r})
print(time.perf_counter() - t0)
"""


def cold_start(query: str, modality: str, scope: str) -> float:
    """Seconds from a fresh interpreter to the first answer: import, tree, lexicon, model, cached index."""
    import subprocess
    code = COLD_START.format(query=query, modality=modality, scope=scope)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queries", nargs="?", default=str(DEFAULT_QUERIES))
    parser.add_argument("--modality", default="ct")
    parser.add_argument("--scope", default="main", choices=["main", "totalseg", "any"])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after the warm-up pass")
    args = parser.parse_args(argv)

    items = [json.loads(line) for line in Path(args.queries).read_text(encoding="utf-8").splitlines() if line.strip()]

    sys.path.insert(0, str(REPO))
    from prosector.knowledge import resolve
    from prosector.knowledge.resolver import default_resolver

    semantic = default_resolver().semantic()   # builds the on-disk index the first time
    index_note = "no semantic index (model or faiss missing)" if semantic is None else semantic.origin
    cold = cold_start(items[0]["query"], args.modality, args.scope)

    results = []
    for item in items:  # warm-up pass, also the scored one
        res = resolve(item["query"], modality=args.modality, scope=args.scope)
        results.append(res)
    latencies = []
    for _ in range(max(1, args.repeat)):
        for item in items:
            t = time.perf_counter()
            resolve(item["query"], modality=args.modality, scope=args.scope)
            latencies.append((time.perf_counter() - t) * 1000.0)

    by_kind = defaultdict(lambda: [0, 0])
    overall = [0, 0]
    debatable = [0, 0]
    side_items = [0, 0]
    unknown_items = [0, 0]
    failures = []
    suggested = [0, 0]
    for item, res in zip(items, results):
        if item.get("suggest"):
            suggested[0] += set(item["suggest"]) <= set(res.suggestions)
            suggested[1] += 1
        got = res.leaves()
        expect = sorted(item["expect"])
        right = got == expect
        if item.get("debatable"):
            debatable[0] += right
            debatable[1] += 1
        else:
            overall[0] += right
            overall[1] += 1
            by_kind[item["kind"]][0] += right
            by_kind[item["kind"]][1] += 1
            if has_side(expect):
                side_items[0] += right
                side_items[1] += 1
            if item["status"] == "unknown":
                unknown_items[0] += not res.concepts
                unknown_items[1] += 1
        if not right or (item["status"] == "unknown" and res.concepts):
            failures.append((item, res, got))

    print(f"queries: {args.queries}  modality={args.modality} scope={args.scope}")
    print(f"exact-set accuracy (non-debatable): {pct(*overall)}")
    for kind, (ok, n) in sorted(by_kind.items()):
        print(f"  {kind:16s} {pct(ok, n)}")
    print(f"items whose expected set has a side: {pct(*side_items)}")
    print(f"unknown items with no concept:       {pct(*unknown_items)}")
    print(f"debatable items (apart):             {pct(*debatable)}")
    print(f"expected container among suggestions: {pct(*suggested)}")
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    print(f"latency per query after warm-up: p50 {statistics.median(lat):.2f} ms, p95 {p95:.2f} ms, "
          f"max {lat[-1]:.2f} ms over {len(lat)} calls")
    print(f"cold start in a fresh process (import + tree + lexicon + model + cached index + first query): {cold:.2f} s")
    print(f"semantic index: {index_note}")
    print(f"failures: {len(failures)}")
    for item, res, got in failures:
        tag = " (debatable)" if item.get("debatable") else ""
        print(f"  [{item['kind']}]{tag} {item['query']!r}: expected {item['expect']} got {got} "
              f"status={res.status} ids={res.ids} unresolved={[u.text for u in res.unresolved]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
