"""`prosector report IMAGE`: draft findings, one sentence per finding, every number measured."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from prosector.errors import InputError

EPILOG = """examples:
  prosector report ct.nii.gz --seg totalseg_output/ --region abdomen -o findings.md
  prosector report ct.nii.gz --seg seg.nii.gz --json

Regions: abdomen, chest, pelvis, spine (default: all). With --llm or PROSECTOR_LLM the sentences may
be reworded by the model; a rewording that changes a number or names another structure is refused
and the template sentence kept. -o writes Markdown and, beside it, the sentences with evidence as JSON."""


def register(sub) -> None:
    import argparse

    from prosector.commands.ask import add_common

    parser = sub.add_parser("report", help="draft grounded findings for a scan",
                            description="Draft report findings from masks: each sentence cites its structures, "
                                        "measured numbers and reference sources.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="the scan: NIfTI, NRRD, MGZ or a DICOM folder/zip")
    parser.add_argument("--region", choices=["abdomen", "chest", "pelvis", "spine"], help="region (default: all)")
    parser.add_argument("-o", "--output", metavar="REPORT.md", help="write Markdown here (and REPORT.json beside it)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_common(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from prosector.agent import Agent
    from prosector.agent.store import write_json
    from prosector.commands.ask import open_session

    output = Path(args.output) if args.output else None
    if output is not None and not output.parent.resolve().is_dir():
        raise InputError("the folder for the report does not exist", path=output.parent)
    session = open_session(args)
    report = Agent(session, llm=args.llm).report(args.region)
    if output is not None:
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(report.markdown)
        tmp.replace(output)
        write_json(output.with_suffix(".json"), report.to_dict())
    if args.json:
        print(json.dumps({"workspace": session.id, **report.to_dict()}, ensure_ascii=False))
    elif output is None:
        print(report.markdown, end="")
    else:
        print(f"wrote {output} and {output.with_suffix('.json')}")
    for line in report.rejected:
        print(f"note: rephrasing refused: {line}", file=sys.stderr)
    return 0
