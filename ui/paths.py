"""Which files a remote caller (an MCP client, a browser) may name: only those inside allowed folders."""
from __future__ import annotations

import os
from pathlib import Path

from prosector.config import home
from prosector.errors import InputError


def default_roots() -> list[Path]:
    """The current directory and PROSECTOR_HOME, as the issue asks."""
    return [Path.cwd(), home()]


class AllowedFolders:
    """A set of folders; `confine` turns a caller's path into a real path inside one of them, or refuses."""

    def __init__(self, roots: list[str | Path] | None = None):
        chosen = list(roots) if roots else default_roots()
        self.roots = [Path(r).expanduser().resolve() for r in chosen]
        # The first folder is where relative paths start.
        self.base = self.roots[0]

    def __repr__(self) -> str:
        return f"AllowedFolders({[str(r) for r in self.roots]})"

    def confine(self, path: str | os.PathLike, what: str = "path", *, must_exist: bool = True) -> Path:
        text = str(path).strip()
        if not text:
            raise InputError(f"{what} is empty")
        if "\x00" in text:
            raise InputError(f"{what} contains a NUL byte")
        candidate = Path(text).expanduser()
        # `..` is refused outright: it only ever serves to climb out of the folder a caller was given.
        if ".." in candidate.parts:
            raise InputError(f"{what} {text!r} uses '..'; give a path inside the allowed folders "
                             f"({self.describe()})")
        if not candidate.is_absolute():
            candidate = self.base / candidate
        # resolve() follows symlinks: a link that points outside lands outside and is refused.
        real = candidate.resolve()
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise InputError(f"{what} {text!r} is outside the allowed folders ({self.describe()}); "
                             "start the server with --allow DIR to add one")
        if must_exist and not real.exists():
            raise InputError(f"{what} {text!r} does not exist")
        return real

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots)
