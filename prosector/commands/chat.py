"""`prosector chat`: the Gradio app in a browser: load a scan, ask in words, see and download the masks."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  prosector chat                                  (then open http://127.0.0.1:7860)
  prosector chat --allow /data/scans              (server paths the app may open: these and PROSECTOR_HOME)
  PROSECTOR_LLM=... prosector chat                (a configured language model plans; default: offline planner)

The app listens on 127.0.0.1 unless --host says otherwise, never makes a public share link, and
loads nothing from the internet (no fonts, scripts or analytics)."""


def register(sub) -> None:
    parser = sub.add_parser("chat", help="open the chat app with a scan viewer (Gradio, local)",
                            description="A local web app: load a scan, ask for anatomy in words, see the "
                                        "masks on the slices, download NIfTI, statistics and the report.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", choices=["never"], default="never",
                        help="public share links are never made: scans stay on this machine")
    parser.add_argument("--allow", action="append", metavar="DIR", default=None,
                        help="a folder whose scans may be opened by server path (repeatable; default: current directory)")
    parser.add_argument("--max-upload-mb", type=float, default=2048, help="largest upload accepted (default 2048 MB)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from prosector.commands._serve import check_server_flags
    from prosector.config import home
    from prosector.errors import InputError

    check_server_flags(args.allow, args.port)
    if args.max_upload_mb <= 0:
        raise InputError("--max-upload-mb must be positive")
    from prosector.ui.app import build_app, launch
    from prosector.ui.paths import AllowedFolders

    allowed = AllowedFolders([*(args.allow or [Path.cwd()]), home()])
    app = build_app(allowed, max_upload_mb=args.max_upload_mb)
    print(f"Prosector chat on http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    launch(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0
