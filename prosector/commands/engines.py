"""`prosector engines`: what is installed and usable, with vocabulary sizes and devices."""
from __future__ import annotations

import json

from prosector.api import engine_table


def register(sub) -> None:
    parser = sub.add_parser("engines", help="list segmentation engines: readiness, vocabulary, device",
                            description="List the segmentation engines, whether each can run now, "
                                        "and what fixes one that cannot.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args) -> int:
    rows = engine_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "ready" if row["ready"] else "not ready"
        sizes = ", ".join(f"{m.upper()} {n}" for m, n in row["vocabulary"].items())
        print(f"{row['name']:12s} {state:10s} device {row['device']:5s} cost {row['cost']:7s} vocabulary: {sizes}")
        if row["reason"]:
            print(f"{'':12s} {row['reason']}")
        if not row["ready"] and row["fix"]:
            print(f"{'':12s} fix: {row['fix']}")
    return 0
