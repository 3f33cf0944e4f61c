"""The Python API the CLI, the chat and the MCP server all call (TotalSegmentator's pattern)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from prosector.errors import InputError
from prosector.exports.report import RunReport, scan_summary
from prosector.exports.staging import check_writable, staged_output
from prosector.io import load_scan
from prosector.mask import Mask
from prosector.measure import Measurements, measure
from prosector.scan import Scan

FORMATS = ("nifti", "multilabel", "dicom-seg")


def describe_scan(scan: Scan) -> dict:
    """What `prosector info` shows: geometry, modality, intensities, provenance, warnings."""
    info = scan_summary(scan)
    data = scan.data
    info["dtype"] = str(data.dtype)
    info["intensity"] = {
        "min": float(np.min(data)),
        "max": float(np.max(data)),
        "mean": float(np.mean(data, dtype=np.float64)),
        "p1": float(np.percentile(data, 1)),
        "p99": float(np.percentile(data, 99)),
        "unit": "HU" if scan.modality == "ct" else "a.u.",
    }
    info["field_of_view_mm"] = [round(n * s, 3) for n, s in zip(scan.shape[:3], scan.spacing)]
    if scan.nifti_header is not None:
        header = scan.nifti_header
        info["nifti"] = {"qform_code": int(header["qform_code"]), "sform_code": int(header["sform_code"])}
    info["notes"] = list(scan.provenance.notes)
    info["warnings"] = list(scan.warnings)
    return info


def parse_formats(formats: str | list[str] | None, scan_is_dicom: bool | None = None) -> list[str]:
    if formats is None:
        return ["nifti", "multilabel"] + (["dicom-seg"] if scan_is_dicom else [])
    items = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise InputError(f"unknown output format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return items


@dataclass
class ImportResult:
    scan: Scan
    masks: list[Mask]
    measurements: list[Measurements]
    out_dir: Path
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def write_outputs(
    scan: Scan,
    masks: list[Mask],
    out_dir: Path,
    report: RunReport,
    *,
    formats: list[str],
    statistics: bool,
    report_path: Path | None = None,
) -> list[Measurements]:
    """Measure and write everything into `out_dir` at once: all files appear, or none do."""
    from prosector.exports import nifti, stats

    timer = time.perf_counter()
    measurements = [measure(m, scan) for m in masks]
    report.seconds["measure"] = time.perf_counter() - timer
    for m in measurements:
        if m.touches_border:
            report.warnings.append(f"{m.name} touches the scan border ({', '.join(m.border_axes)}): "
                                   "it may be cut off, its volume is a lower bound")
    timer = time.perf_counter()
    with staged_output(out_dir) as staging:
        written: list[Path] = []
        if "nifti" in formats:
            written += [nifti.save_mask(m, scan, staging / f"{m.name}.nii.gz") for m in masks]
        if "multilabel" in formats:
            path, sidecar, warnings = nifti.save_multilabel(masks, scan, staging / "segmentation.nii.gz")
            written += [path, sidecar]
            report.warnings += warnings
        if "dicom-seg" in formats:
            from prosector.exports.dicom_seg import write_dicom_seg

            result = write_dicom_seg(scan, masks, staging / "segmentation.dcm", codes=snomed_codes())
            report.warnings += list(result or [])
            written.append(staging / "segmentation.dcm")
        if statistics:
            written.append(stats.write_statistics(measurements, staging / "statistics.json"))
            written.append(stats.write_measurements(measurements, staging / "measurements.json",
                                                    scan_info=scan_summary(scan)))
        report.seconds["write"] = time.perf_counter() - timer
        report.outputs = [str(Path(out_dir) / p.name) for p in written] + [str(Path(out_dir) / "run.json")]
        report.write(staging / "run.json")
    if report_path is not None:
        _write_atomically(report_path, (Path(out_dir) / "run.json").read_text())
    return measurements


def import_segmentation(
    image: str | Path,
    seg: str | Path,
    out_dir: str | Path,
    *,
    class_map: str | Path | dict | None = None,
    statistics: bool = False,
    formats: str | list[str] | None = None,
    report_path: str | Path | None = None,
    modality: str | None = None,
    series_uid: str | None = None,
) -> ImportResult:
    """Bring an existing segmentation onto a scan's exact grid, measure it, and export it."""
    from prosector.models.precomputed import PrecomputedEngine

    out_dir = Path(out_dir)
    check_writable(out_dir)
    if report_path is not None:
        check_writable(Path(report_path).parent)
    report = RunReport(command="import-seg")
    timer = time.perf_counter()
    scan = load_scan(image, modality=modality, series_uid=series_uid, require_3d=True)
    report.seconds["load_scan"] = time.perf_counter() - timer
    chosen = parse_formats(formats, scan.provenance.format == "dicom")
    if "dicom-seg" in chosen and scan.provenance.format != "dicom":
        raise InputError("DICOM SEG output needs a DICOM input series", path=image,
                         hint="Use --format nifti,multilabel for NIfTI, NRRD or MGZ scans.")
    engine = PrecomputedEngine(seg, class_map)
    timer = time.perf_counter()
    masks = engine.load(scan)
    report.seconds["import"] = time.perf_counter() - timer
    report.inputs = {"scan": scan_summary(scan), "segmentation": str(seg)}
    report.engine = {"name": engine.name, "device": "cpu", "structures": len(masks)}
    report.warnings += list(scan.warnings)
    report.warnings += sorted({w for m in masks for w in m.provenance.get("warnings", [])})
    measurements = write_outputs(scan, masks, out_dir, report, formats=chosen, statistics=statistics,
                                 report_path=Path(report_path) if report_path else None)
    return ImportResult(scan, masks, measurements, out_dir, report.outputs, report.warnings, report.to_dict())


def snomed_codes() -> Callable[[str], tuple[str, str, str] | None] | None:
    """SNOMED CT codes per structure from the knowledge tree, when it is installed."""
    try:
        from prosector.knowledge import snomed_code  # type: ignore
    except ImportError:
        return None
    return snomed_code


def _write_atomically(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def engine_table() -> list[dict]:
    """Every engine (but `precomputed`, which needs a segmentation): readiness, vocabulary, device."""
    from prosector.models.registry import build_engines

    rows = []
    for name, engine in build_engines().items():
        readiness = engine.readiness()
        rows.append({
            "name": name,
            "ready": readiness.ready,
            "reason": readiness.reason,
            "fix": readiness.fix,
            "device": engine.device("auto"),
            "cost": engine.cost,
            "vocabulary": {m: len(engine.vocabulary(m)) for m in ("ct", "mr")},
        })
    rows.append({"name": "precomputed", "ready": True, "reason": "uses a segmentation you give with --seg",
                 "fix": "", "device": "cpu", "cost": "low", "vocabulary": {"ct": 0, "mr": 0}})
    return rows
