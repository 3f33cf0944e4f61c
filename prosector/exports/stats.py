"""statistics.json in TotalSegmentator's layout, and our extended measurements file."""
from __future__ import annotations

import json
from pathlib import Path

from prosector.measure import Measurements


def totalseg_statistics(measurements: list[Measurements]) -> dict:
    """`{name: {"volume": mm³, "intensity": mean}}`, as TotalSegmentator's --statistics writes it.

    Empty structures get volume 0 and intensity 0.0, as TotalSegmentator reports them.
    """
    return {
        m.name: {"volume": round(m.volume_mm3, 4), "intensity": round(m.intensity_mean or 0.0, 5)}
        for m in measurements
    }


def write_statistics(measurements: list[Measurements], path: Path) -> Path:
    path.write_text(json.dumps(totalseg_statistics(measurements), indent=4))
    return path


def write_measurements(measurements: list[Measurements], path: Path, *, scan_info: dict) -> Path:
    payload = {
        "scan": scan_info,
        "border_margin_voxels": 3,
        "notes": [
            "volumes of structures with touches_border=true are lower bounds: they may continue outside the scan",
            "world coordinates are RAS+ millimetres: x grows toward the patient's right, y anterior, z superior",
        ],
        "structures": {m.name: m.to_dict() for m in measurements},
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
