"""`prosector info IMAGE`: a faithful description of a scan."""
from __future__ import annotations

import json

from prosector.api import describe_scan
from prosector.io import load_scan
from prosector.scan import MODALITIES


def register(sub) -> None:
    parser = sub.add_parser("info", help="describe a scan: shape, spacing, orientation, modality, intensities",
                            description="Describe a scan without changing it.")
    parser.add_argument("image", help="NIfTI, NRRD, MGH/MGZ, DICOM folder or .zip, PNG/JPEG")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--modality", choices=MODALITIES, help="override the modality the file states")
    parser.add_argument("--series", metavar="UID", help="DICOM: the SeriesInstanceUID to read")
    parser.set_defaults(handler=run)


def run(args) -> int:
    info = describe_scan(load_scan(args.image, modality=args.modality, series_uid=args.series))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    shape = "x".join(map(str, info["shape"]))
    print(f"{info['path']}")
    print(f"  format       {info['format']}{' (2D image)' if info['is_2d'] else ''}")
    print(f"  modality     {info['modality'].upper()}")
    print(f"  shape        {shape} voxels ({info['dtype']})")
    print(f"  spacing      {' x '.join(f'{s:.4g}' for s in info['spacing_mm'])} mm")
    print(f"  orientation  {info['orientation']} (voxel axes toward these patient directions)")
    print(f"  field        {' x '.join(f'{s:.1f}' for s in info['field_of_view_mm'])} mm")
    i = info["intensity"]
    print(f"  intensity    {i['min']:g} .. {i['max']:g} {i['unit']} (1st-99th percentile {i['p1']:g} .. {i['p99']:g})")
    if "nifti" in info:
        print(f"  nifti codes  qform {info['nifti']['qform_code']}, sform {info['nifti']['sform_code']}")
    if "dicom" in info:
        d = info["dicom"]
        print(f"  study        {d['study_instance_uid']}")
        print(f"  series       {d['series_instance_uid']} ({d['instances']} instances) {d['series_description'] or ''}")
        print(f"  frame of ref {d['frame_of_reference_uid']}")
    for note in info["notes"]:
        print(f"  note: {note}")
    for warning in info["warnings"]:
        print(f"  warning: {warning}")
    return 0
