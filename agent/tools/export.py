"""Tool `export`: masks of this session to files in the workspace (or a given folder)."""
from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from .common import ToolResult, guarded

NAME = "export"


class Args(BaseModel):
    structures: list[str] = Field(default_factory=list, description="names or mask ids; empty: every mask")
    format: Literal["nifti", "multilabel", "dicom-seg", "statistics"] = "nifti"


class ExportResult(ToolResult):
    files: list[str] = []


def _run(session, structures: list[str] | None = None, format: str = "nifti", out_dir=None) -> ExportResult:
    out_dir = out_dir or session.root / "exports" / (time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4])
    files = session.export(structures or None, [format], out_dir)
    return ExportResult(text=f"Wrote {len(files)} file(s) to {out_dir}.", files=[str(f) for f in files])


run = guarded(ExportResult, _run)
