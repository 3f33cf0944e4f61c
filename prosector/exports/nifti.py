"""NIfTI outputs on the scan's exact grid: one file per structure and a named multilabel file."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import nibabel as nib
import numpy as np

from prosector.mask import Mask
from prosector.scan import Scan

# nibabel code 0 ("ignore") is what TotalSegmentator uses for its Caret-style label table.
LABEL_TABLE_ECODE = 0


def grid_header(scan: Scan, dtype) -> nib.Nifti1Header:
    """A header with the scan's exact geometry (qform, sform and their codes) for new data."""
    if scan.nifti_header is not None:
        header = scan.nifti_header.copy()
        header.extensions.clear()
        header.set_slope_inter(1.0, 0.0)
        header["cal_min"], header["cal_max"] = 0, 0
        header["descrip"] = b"prosector"
    else:
        header = nib.Nifti1Header()
        # Non-NIfTI inputs (DICOM, NRRD, MGH) have scanner-anchored world coordinates.
        header.set_qform(scan.affine, code=1)
        header.set_sform(scan.affine, code=1)
        header.set_xyzt_units("mm")
    header.set_data_dtype(dtype)
    return header


def to_nifti(data: np.ndarray, scan: Scan) -> nib.Nifti1Image:
    header = grid_header(scan, data.dtype)
    # affine=None keeps the header's qform/sform untouched, codes included.
    return nib.Nifti1Image(data, None, header=header)


def save_mask(mask: Mask, scan: Scan, path: Path) -> Path:
    nib.save(to_nifti(mask.data.astype(np.uint8), scan), str(path))
    return path


def multilabel_array(masks: list[Mask], shape: tuple[int, ...]) -> tuple[np.ndarray, dict[int, str], list[str]]:
    """Labels 1..N in the masks' order; where masks overlap the later one wins and we say so."""
    dtype = np.uint8 if len(masks) < 256 else np.uint16
    labels = np.zeros(shape[:3], dtype=dtype)
    names: dict[int, str] = {}
    warnings: list[str] = []
    for index, mask in enumerate(masks, start=1):
        names[index] = mask.name
        overlap = labels[mask.data]
        if overlap.any():
            taken = sorted({names[int(v)] for v in np.unique(overlap) if v})
            warnings.append(f"multilabel: {mask.name} overlaps {', '.join(taken)}; the overlap carries "
                            f"{mask.name}'s label there (the per-structure files keep both)")
        labels[mask.data] = index
    return labels, names, warnings


def label_table_xml(names: dict[int, str]) -> bytes:
    """The Caret label-table XML that TotalSegmentator writes into and reads from NIfTI headers."""
    rows = []
    for key, name in names.items():
        red, green, blue = _colour(key)
        rows.append(f'<Label Key="{key}" Red="{red:.3f}" Green="{green:.3f}" Blue="{blue:.3f}" '
                    f'Alpha="1"><![CDATA[{escape(name)}]]></Label>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<CaretExtension>\n'
        '<VolumeInformation Index="0">\n<LabelTable>\n' + "\n".join(rows) + "\n</LabelTable>\n"
        "<VolumeType><![CDATA[Label]]></VolumeType>\n</VolumeInformation>\n</CaretExtension>\n"
    ).encode("utf-8")


def read_label_table(img: nib.Nifti1Image) -> dict[int, str] | None:
    """Index -> name from a NIfTI's label-table extension, or None when it has none."""
    for ext in getattr(img.header, "extensions", []):
        content = ext.get_content()
        if isinstance(content, bytes) and b"LabelTable" in content:
            try:
                root = ET.fromstring(content.rstrip(b"\x00 \n"))
            except ET.ParseError:
                continue
            return {int(label.get("Key")): (label.text or "").strip() for label in root.iter("Label")}
    return None


def save_multilabel(masks: list[Mask], scan: Scan, path: Path) -> tuple[Path, Path, list[str]]:
    """Write the multilabel NIfTI with its names in the header and in a sidecar JSON."""
    labels, names, warnings = multilabel_array(masks, scan.data.shape)
    img = to_nifti(labels, scan)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(LABEL_TABLE_ECODE, label_table_xml(names)))
    nib.save(img, str(path))
    sidecar = path.with_name(path.name.replace(".nii.gz", "").replace(".nii", "") + ".json")
    sidecar.write_text(json.dumps({str(k): v for k, v in names.items()}, indent=2))
    return path, sidecar, warnings


def _colour(key: int) -> tuple[float, float, float]:
    # Golden-ratio hue steps keep neighbouring labels visibly different.
    import colorsys

    return colorsys.hsv_to_rgb((key * 0.618033988749895) % 1.0, 0.75, 0.95)
