"""`prosector ask IMAGE "question"`: one request through the planner, answered from masks."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

EPILOG = """examples:
  prosector ask ct.nii.gz "how big is the spleen?" --seg totalseg_output/
  prosector ask ct.nii.gz "which kidney is bigger?" --seg seg.nii.gz --json
  prosector ask ct.nii.gz "segment the left adrenal gland" --llm openai:gpt-4o-mini

The planner is offline (rules over the anatomy tree) unless --llm or PROSECTOR_LLM names a chat
model. Masks and measurements are kept in a workspace (PROSECTOR_HOME/workspaces), so asking
again about the same image reuses them. Exit status: 0 answered, 2 bad input or unanswerable, 1 failure."""


def register(sub) -> None:
    import argparse

    parser = sub.add_parser("ask", help="ask a question about a scan in plain words",
                            description="Answer a question about a scan from its masks; every number is measured.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="the scan: NIfTI, NRRD, MGZ or a DICOM folder/zip")
    parser.add_argument("question", nargs="+", help="the question, e.g. 'is the spleen enlarged?'")
    add_common(parser)
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    parser.set_defaults(handler=run)


def add_common(parser) -> None:
    parser.add_argument("--seg", metavar="EXISTING", help="an existing segmentation to answer from "
                                                          "(TotalSegmentator folder, multilabel file or DICOM SEG)")
    parser.add_argument("--class-map", metavar="MAP", help="label names for a multilabel --seg (JSON file or task)")
    parser.add_argument("--modality", choices=["ct", "mr"], help="override the detected modality")
    parser.add_argument("--series-uid", help="DICOM series to load when a folder holds several")
    parser.add_argument("--llm", metavar="SPEC", help="chat model (overrides PROSECTOR_LLM): openai:gpt-4o-mini, "
                                                      "ollama:qwen3:8b, a local model path, smollm2, or offline")
    parser.add_argument("--workspace", metavar="ID", help="workspace to use (default: one per image and segmentation)")


def open_session(args):
    """The workspace for this image + segmentation (reused across runs), with the scan loaded."""
    from prosector.agent import Session

    key = f"{Path(args.image).resolve()}|{Path(args.seg).resolve() if args.seg else ''}"
    workspace = args.workspace or "cli-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    session = Session.open(workspace)
    session.load_scan(args.image, seg=args.seg, class_map=args.class_map, modality=args.modality,
                      series_uid=args.series_uid)
    return session


def run(args) -> int:
    from prosector.agent import Agent

    session = open_session(args)
    agent = Agent(session, llm=args.llm)
    reply = agent.ask(" ".join(args.question), on_step=None if args.json else _step_printer())
    if args.json:
        print(json.dumps({"workspace": session.id, **reply.to_dict()}, ensure_ascii=False, default=str))
    else:
        stream = sys.stderr if reply.error else sys.stdout
        print(reply.text if not reply.error else f"prosector: {reply.text}", file=stream)
        for warning in reply.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return reply.exit_code


def _step_printer():
    def show(line: str) -> None:
        print(f"  · {line}", file=sys.stderr)

    return show
