"""`prosector segment IMAGE TEXT`: free text -> masks on the scan's grid, statistics and a run report."""
from __future__ import annotations

import argparse
import sys
import time

from prosector.api import ENGINE_CHOICES, segment
from prosector.scan import MODALITIES

EXAMPLES = """examples:
  prosector segment ct.nii.gz "left adrenal gland" -o out/
  prosector segment ct.nii.gz "both kidneys and the spleen" --statistics -o out/
  prosector segment ct.nii.gz "liver" --seg totalseg_output/ -o out/       (an existing segmentation)
  prosector segment ct.nii.gz "liver" --box 40,30,80,70@60 -o out/         (LiteMedSAM from a box)
  prosector segment ct.nii.gz "lungs" --engine classical -o out/

--box x0,y0,x1,y1@z: voxel indices of the scan's RAS view (x toward the patient's right,
y anterior, z superior: the slice), both corners inclusive; --box-units mm for world RAS+ mm.
On a 2D image: x0,y0,x1,y1 in pixels (x = column, y = row).
"""


def register(sub) -> None:
    parser = sub.add_parser("segment", help="segment structures named in plain words",
                            description="Resolve the words, choose an engine per structure, and write "
                                        "masks on the scan's exact grid.",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="NIfTI, NRRD, MGH/MGZ, DICOM folder or .zip (PNG/JPEG with --box)")
    parser.add_argument("text", help='what to segment, in plain words: "left adrenal gland", "RLL", "both kidneys"')
    parser.add_argument("-o", "--output", metavar="OUT", help="output folder (default: IMAGE_NAME_prosector)")
    parser.add_argument("--engine", default="auto", choices=("auto",) + ENGINE_CHOICES)
    parser.add_argument("--seg", metavar="EXISTING", help="an existing segmentation (precomputed engine)")
    parser.add_argument("--class-map", metavar="JSON", help="label names for a multilabel --seg")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--fast", action="store_true", help="lower-resolution models where an engine has them")
    parser.add_argument("--format", metavar="LIST", help="comma list of nifti,multilabel,dicom-seg")
    parser.add_argument("--statistics", action="store_true", help="write statistics.json and measurements.json")
    parser.add_argument("--report", metavar="JSON", help="also write the run report here")
    parser.add_argument("--modality", choices=MODALITIES, help="override the modality the file states")
    parser.add_argument("--series", metavar="UID", help="DICOM: the SeriesInstanceUID to read")
    parser.add_argument("--box", metavar="x0,y0,x1,y1@z", help="box prompt for LiteMedSAM (see below)")
    parser.add_argument("--box-units", default="voxel", choices=("voxel", "mm"))
    parser.set_defaults(handler=run)


class ProgressLine:
    """A progress bar on stderr for steps that take longer than a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, fraction: float, message: str) -> None:
        if time.monotonic() - self.started < 1.0:
            return
        filled = int(max(0.0, min(1.0, fraction)) * 30)
        end = "\n" if fraction >= 1.0 or not sys.stderr.isatty() else "\r"
        print(f"[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:3.0f}% {message}", end=end,
              file=sys.stderr, flush=True)
        self.shown = True


def run(args) -> int:
    from pathlib import Path

    out = args.output or f"{_scan_name(args.image)}_prosector"
    result = segment(
        args.image, args.text, out, engine=args.engine, seg=args.seg, class_map=args.class_map,
        device=args.device, fast=args.fast, formats=args.format, statistics=args.statistics,
        report_path=args.report, modality=args.modality, series_uid=args.series, box=args.box,
        box_units=args.box_units, progress=ProgressLine(), announce=lambda line: print(line, flush=True))
    for m in result.measurements:
        if m.empty:
            continue
        bound = "at least " if m.touches_border else ""
        mean = f", mean {m.intensity_mean:.1f} {m.intensity_unit}" if m.intensity_mean is not None else ""
        print(f"{m.name}: {bound}{m.volume_ml:.1f} mL{mean}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {len(result.outputs)} files to {Path(out)}")
    return 0


def _scan_name(image: str) -> str:
    from prosector.scan import Provenance, Scan

    return Scan(data=None, affine=None, modality="", provenance=Provenance(path=str(image), format="")).name
