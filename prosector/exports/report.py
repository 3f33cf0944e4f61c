"""The machine-readable run report: inputs, versions, engine, device, timings, outputs, warnings."""
from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from prosector import __version__
from prosector.scan import Scan

LIBRARIES = ("numpy", "scipy", "nibabel", "pydicom", "highdicom", "SimpleITK")


def library_versions() -> dict[str, str]:
    versions = {"prosector": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def scan_summary(scan: Scan) -> dict:
    p = scan.provenance
    summary = {
        "path": p.path,
        "format": p.format,
        "shape": list(scan.shape),
        "spacing_mm": [round(s, 6) for s in scan.spacing],
        "orientation": scan.orientation,
        "affine": [[float(v) for v in row] for row in scan.affine],
        "modality": scan.modality,
        "is_2d": scan.is_2d,
    }
    if p.format == "dicom":
        summary["dicom"] = {
            "study_instance_uid": p.study_uid,
            "series_instance_uid": p.series_uid,
            "frame_of_reference_uid": p.frame_of_reference_uid,
            "series_description": p.series_description,
            "instances": len(p.dicom_files),
        }
    return summary


@dataclass
class RunReport:
    command: str
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    inputs: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: str = "ok"

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "argv": sys.argv,
            "started": self.started,
            "status": self.status,
            "versions": library_versions(),
            "inputs": self.inputs,
            "engine": self.engine,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "outputs": self.outputs,
            "warnings": self.warnings,
        }

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path
