"""Tool `session`: what is loaded and computed."""
from __future__ import annotations

from pydantic import BaseModel

from .common import ToolResult, guarded

NAME = "session"


class Args(BaseModel):
    pass


class SessionResult(ToolResult):
    summary: dict = {}


def _run(session) -> SessionResult:
    summary = session.summary()
    if not summary["scan"]:
        return SessionResult(text="No scan is loaded.", summary=summary)
    masks = list(summary["masks"])
    text = f"Scan {summary['scan']['path']} is loaded; masks: {', '.join(masks) or 'none yet'}."
    return SessionResult(text=text, mask_ids=masks, summary=summary)


run = guarded(SessionResult, _run)
