"""The Python API the CLI, the chat and the MCP server all call (TotalSegmentator's pattern)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from prosector.errors import InputError, RuntimeFailure
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


@dataclass
class SegmentResult:
    scan: Scan
    masks: list[Mask]
    measurements: list[Measurements]
    out_dir: Path | None
    structures: list[dict] = field(default_factory=list)   # resolved concepts, as `terms --json` shows them
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def segment(
    image: str | Path,
    text: str,
    out_dir: str | Path | None = None,
    *,
    engine: str | None = None,
    seg: str | Path | None = None,
    class_map: str | Path | dict | None = None,
    device: str = "auto",
    fast: bool = False,
    formats: str | list[str] | None = None,
    statistics: bool = False,
    report_path: str | Path | None = None,
    modality: str | None = None,
    series_uid: str | None = None,
    box: str | None = None,
    box_units: str = "voxel",
    progress: Callable[[float, str], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> SegmentResult:
    """`prosector segment`: free text -> masks on the scan's grid, measured; written when `out_dir` is given."""
    from prosector.models.base import SegmentOptions
    from prosector.segmenting import build_router, segment_scan

    if out_dir is not None:
        check_writable(Path(out_dir))
    if report_path is not None:
        check_writable(Path(report_path).parent)
    if engine not in (None, "auto") and engine not in ENGINE_CHOICES:
        raise InputError(f"unknown engine {engine!r}; choose from auto, {', '.join(ENGINE_CHOICES)}")
    if engine == "precomputed" and seg is None:
        raise InputError("--engine precomputed needs an existing segmentation: give it with --seg")
    report = RunReport(command="segment")
    timer = time.perf_counter()
    scan = load_scan(image, modality=modality, series_uid=series_uid, require_3d=box is None)
    report.seconds["load_scan"] = time.perf_counter() - timer
    chosen_formats = parse_formats(formats, scan.provenance.format == "dicom") if out_dir is not None else []
    if "dicom-seg" in chosen_formats and scan.provenance.format != "dicom":
        raise InputError("DICOM SEG output needs a DICOM input series", path=image)
    options = SegmentOptions(device=device, fast=fast, progress=progress)
    report.inputs = {"scan": scan_summary(scan), "text": text, "segmentation": str(seg) if seg else None}
    try:
        if box is not None:
            result = _segment_box(scan, text, box, box_units, options, announce)
        else:
            result = segment_scan(scan, text, router=build_router(seg=seg, class_map=class_map),
                                  engine=engine, options=options, announce=announce)
    except RuntimeFailure as err:
        # An engine that failed mid-run: no masks are written, but the asked-for report says what happened.
        if report_path is not None:
            report.status, report.warnings = "failed", [*report.warnings, err.user_message()]
            _write_atomically(Path(report_path), json.dumps(report.to_dict(), indent=2))
        raise
    report.seconds.update(result.seconds)
    report.engine = {
        "plan": result.plan.to_dict() if result.plan else None,
        "runs": [vars(log) for log in result.logs],
        "device": sorted({log.device for log in result.logs}),
    }
    report.warnings += list(scan.warnings) + result.warnings
    from prosector.knowledge import load_tree

    structures = result.resolution.to_dict(load_tree())["concepts"] if result.resolution else []
    if out_dir is None:
        measurements = [measure(m, scan) for m in result.masks]
        return SegmentResult(scan, result.masks, measurements, None, structures, [], report.warnings, report.to_dict())
    measurements = write_outputs(scan, result.masks, Path(out_dir), report, formats=chosen_formats,
                                 statistics=statistics, report_path=Path(report_path) if report_path else None)
    return SegmentResult(scan, result.masks, measurements, Path(out_dir), structures, report.outputs,
                         report.warnings, report.to_dict())


ENGINE_CHOICES = ("classical", "totalseg", "medsam", "precomputed", "sat")


def _segment_box(scan: Scan, text: str, box: str, units: str, options, announce):
    """A box prompt: the words name the structure, the box says where; LiteMedSAM draws it."""
    from prosector.knowledge import load_tree
    from prosector.models.medsam import MedSAMEngine
    from prosector.models.medsam.prompt import parse_box
    from prosector.models.router import Plan, RunLog
    from prosector.segmenting import Segmentation, resolve_request

    resolution = resolve_request(text, scan.modality)  # a 2D picture's "unknown" modality resolves over all
    ids = list(dict.fromkeys(resolution.ids))
    if len(ids) != 1:
        raise InputError(f"a box prompt segments one structure; {text!r} names {len(ids)}")
    engine = MedSAMEngine()
    ready = engine.readiness()
    if not ready.ready:
        raise InputError(f"medsam is not ready: {ready.reason}", hint=ready.fix)
    rect, z = parse_box(box, scan, units)
    if announce:
        announce(f"structure: {load_tree().get(ids[0]).name} [{ids[0]}]; engine medsam from box {box} ({units})")
    started = time.perf_counter()
    mask = engine.segment_box_3d(scan, rect, z, name=ids[0], device=options.device, progress=options.progress)
    seconds = time.perf_counter() - started
    log = RunLog("medsam", ids, seconds, False, engine.device(options.device))
    return Segmentation(scan, resolution, Plan(scan.modality, []), [mask], [log], [], {"segment": seconds})

