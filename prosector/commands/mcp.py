"""`prosector mcp`: serve Prosector's tools to MCP clients (stdio by default, streamable HTTP with --http)."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  prosector mcp                                   (stdio; for Claude Desktop, Cursor, VS Code ...)
  prosector mcp --allow /data/scans --allow .     (paths the tools may read: these and PROSECTOR_HOME)
  prosector mcp --http --port 8765                (streamable HTTP on http://127.0.0.1:8765/mcp)

Paths outside the allowed folders, '..' in a path, and symlinks that lead out are refused as tool
errors. Default allowed folders: the current directory and PROSECTOR_HOME."""


def register(sub) -> None:
    parser = sub.add_parser("mcp", help="serve Prosector as MCP tools (stdio, or HTTP with --http)",
                            description="An MCP server with find_structures, list_structures, engines, "
                                        "segment, measure, ask and draft_report.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument("--allow", action="append", metavar="DIR", default=None,
                        help="a folder the tools may read scans from (repeatable; default: the current directory)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from prosector.commands._serve import check_server_flags
    from prosector.ui.mcp_server import run_server

    check_server_flags(args.allow, args.port)
    run_server(args.allow, http=args.http, host=args.host, port=args.port)
    return 0
