"""`prosector terms`: what words name which structures, and the vocabulary itself."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from prosector.errors import InputError

EPILOG = """examples:
  prosector terms "L adrenal"
  prosector terms "segment both kidneys and the spleen" --json
  prosector terms --batch queries.txt --modality ct      (one query per line; - reads standard input)
  prosector terms --list --modality mr --json

scope: which engines count as able to segment a concept. main (default) = the modality's main
TotalSegmentator task (total for CT, total_mr for MR); totalseg = any TotalSegmentator task;
any = any engine the anatomy tree names (TotalSegmentator subtasks or SAT). Exit status: 0 resolved,
2 when nothing in the query could be resolved (or bad input)."""


def register(sub) -> None:
    import argparse

    parser = sub.add_parser("terms", help="resolve anatomy words to structures; list the vocabulary",
                            description="Turn free text into the anatomy structures Prosector can segment, "
                                        "or list the vocabulary.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", nargs="*", help="free text, e.g. 'left adrenal gland'")
    parser.add_argument("--modality", choices=["ct", "mr"], default=None, help="image modality (default: either)")
    parser.add_argument("--scope", choices=["main", "totalseg", "any"], default="main",
                        help="engines that count as able to segment a concept (default: main)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--batch", metavar="FILE", help="resolve one query per line of FILE (- for standard input), "
                                                        "printing one JSON object per line")
    parser.add_argument("--list", action="store_true", help="print the vocabulary")
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.list:
        return _list(args)
    if args.batch:
        return _batch(args)
    text = " ".join(args.query).strip()
    if not text:
        raise InputError("give a query, --batch FILE or --list (e.g. prosector terms \"left kidney\")")
    from prosector.knowledge import resolve

    result = resolve(text, modality=args.modality, scope=args.scope)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_human(result.to_dict())
    return 2 if result.status == "unknown" else 0


def _batch(args) -> int:
    from prosector.knowledge import resolve
    from prosector.errors import ProsectorError

    if args.batch == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(args.batch)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read the query file: {err.strerror if isinstance(err, OSError) else err}",
                             path=str(path)) from None
    for line in lines:
        try:
            out = resolve(line, modality=args.modality, scope=args.scope).to_dict()
        except ProsectorError as err:
            out = {"query": line, "status": "error", "error": err.user_message(), "concepts": [],
                   "unresolved": [], "suggestions": [], "question": None}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def _list(args) -> int:
    from prosector.knowledge import load_tree

    tree = load_tree()
    rows = []
    for concept in tree:
        if not tree.covered(concept.id, args.scope, args.modality):
            continue
        rows.append({"id": concept.id, "name": concept.name, "synonyms": list(concept.synonyms),
                     "laterality": concept.laterality, "kind": concept.kind, "region": concept.region,
                     "leaves": tree.leaves(concept.id, modality=args.modality),
                     "engines": tree.engine_names(concept.id, args.modality)})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for row in rows:
        engines = ", ".join(sorted(row["engines"])) or "parts"
        print(f"{row['id']:40s} {row['name']:45s} [{engines}]")
    print(f"{len(rows)} structures (scope {args.scope}, modality {args.modality or 'any'})")
    return 0


def _print_human(out: dict) -> None:
    print(f"status: {out['status']}")
    for c in out["concepts"]:
        leaves = ", ".join(c["leaves"]) or "-"
        side = f"; side: {c['side_rule']}" if c.get("side_rule") else ""
        print(f"  {c['name']} [{c['id']}] ({c['match']}, {c['score']:.2f}{side})")
        print(f"      TotalSegmentator classes: {leaves}")
    for u in out["unresolved"]:
        known = f" (known as {u['concept']})" if u["concept"] else ""
        print(f"  not resolved: '{u['text']}': {u['reason']}{known}")
    if out["suggestions"]:
        print("  suggestions: " + ", ".join(f"{s['name']} [{s['id']}]" for s in out["suggestions"]))
    if out["question"]:
        print(f"  {out['question']}")
