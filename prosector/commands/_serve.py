"""Checks shared by the commands that start a local server (chat, mcp)."""
from __future__ import annotations

from pathlib import Path

from prosector.errors import InputError


def check_server_flags(allow: list[str] | None, port: int) -> None:
    """--allow folders must exist and --port must be a TCP port: one clear line otherwise."""
    for folder in allow or []:
        if not Path(folder).expanduser().is_dir():
            raise InputError("--allow needs an existing folder", path=folder)
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port")
