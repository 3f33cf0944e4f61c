"""The `prosector` command: a thin face over the Python API.

Each subcommand lives in its own module under `prosector.commands` and exposes
`register(subparsers)`; the parser it adds sets `handler=run`. Errors a user can act on are
`ProsectorError`s: printed as one line, exit 2 for bad input, 1 for runtime failures.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from prosector import __version__
from prosector.errors import ProsectorError

EPILOG = """examples:
  prosector info scan.nii.gz
  prosector import-seg scan.nii.gz totalseg_output/ --statistics -o out/
  prosector terms "L adrenal"
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(2, f"prosector: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prosector",
        description="Ask for anatomy in plain words and get it back, precisely, on your own scan.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prosector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    import prosector.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"prosector.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except ProsectorError as err:
        print(f"prosector: error: {err.user_message()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("prosector: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
