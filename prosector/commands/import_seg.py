"""`prosector import-seg IMAGE SEG -o OUT`: bring an existing segmentation onto the scan's grid."""
from __future__ import annotations

from prosector.api import import_segmentation
from prosector.scan import MODALITIES

EXAMPLES = """examples:
  prosector import-seg ct.nii.gz totalseg_output/ --statistics -o out/
  prosector import-seg ct.nii.gz seg.nii.gz --class-map classes.json -o out/
  prosector import-seg dicom_series/ liver_seg.dcm --format nifti,dicom-seg -o out/
"""


def register(sub) -> None:
    import argparse

    parser = sub.add_parser(
        "import-seg", help="put an existing segmentation on the scan's grid, measure and export it",
        description="Masks from a TotalSegmentator output folder, a multilabel NIfTI/NRRD/MGZ or a DICOM SEG, "
                    "on the scan's exact grid, with statistics and a run report.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="the scan the segmentation belongs to")
    parser.add_argument("seg", help="TotalSegmentator output folder, multilabel file, or DICOM SEG")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--class-map", metavar="JSON",
                        help='index -> name as TotalSegmentator writes it ({"1": "spleen", ...}); '
                             "FILE#TASK for a nested map, or a TotalSegmentator task name")
    parser.add_argument("--statistics", action="store_true",
                        help="write statistics.json (TotalSegmentator layout) and measurements.json")
    parser.add_argument("--format", default=None, metavar="LIST",
                        help="comma list of nifti,multilabel,dicom-seg (default nifti,multilabel; "
                             "plus dicom-seg for DICOM input)")
    parser.add_argument("--report", metavar="JSON", help="also write the run report here")
    parser.add_argument("--modality", choices=MODALITIES, help="override the modality the file states")
    parser.add_argument("--series", metavar="UID", help="DICOM: the SeriesInstanceUID to read")
    parser.set_defaults(handler=run)


def run(args) -> int:
    result = import_segmentation(
        args.image, args.seg, args.output, class_map=args.class_map, statistics=args.statistics,
        formats=args.format, report_path=args.report, modality=args.modality, series_uid=args.series)
    present = [m for m in result.measurements if not m.empty]
    print(f"{len(result.masks)} structures imported onto {result.scan.name} "
          f"({len(present)} present, {len(result.masks) - len(present)} empty: not in the field of view)")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {len(result.outputs)} files to {result.out_dir}")
    return 0
