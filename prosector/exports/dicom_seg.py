"""DICOM SEG out and in: masks of a DICOM series as one highdicom Segmentation, and back onto a grid.

Writing needs the series' own instances (the scan must come from DICOM). Reading places every
frame by its plane position and orientation, never by frame order, so a SEG written with flipped
or reordered frames (or in another plane of the same grid) lands on exactly the scan's voxels.
"""
from __future__ import annotations

import os
import uuid
import warnings as warnings_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import iter_pixels
from pydicom.sr.codedict import codes as dicom_codes
from pydicom.sr.coding import Code

import prosector
from prosector.errors import InputError
from prosector.io.dicom import LPS_TO_RAS, read_dicom_instance, why
from prosector.mask import Mask
from prosector.scan import Grid, Scan

# A caller-supplied lookup: structure name -> (code value, coding scheme, code meaning), or None.
CodeLookup = Callable[[str], "tuple[str, str, str] | None"]

ANATOMY_CATEGORY = Code("123037004", "SCT", "Anatomical Structure")
GENERIC_ANATOMY = Code("91723000", "SCT", "Anatomical structure")
# Rule-based masks come from thresholds and morphology; every other engine is a learned model.
ENGINE_FAMILY = {"classical": dicom_codes.cid7162.MorphologicalOperations}
DEFAULT_FAMILY = dicom_codes.cid7162.ArtificialIntelligence
# MedSAM follows a user's box or click; the others run unattended.
ENGINE_ALGORITHM_TYPE = {"medsam": "SEMIAUTOMATIC"}

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
# A SEG frame must sit on the scan's voxel centres at least this closely (mm).
GRID_TOLERANCE_MM = 1e-3
DICOM_LO_MAX = 64  # longest Segment Label / Code Meaning a DICOM LO element holds


# --- writing -----------------------------------------------------------------------------------

def write_dicom_seg(scan: Scan, masks: Sequence[Mask], path: str | Path,
                    codes: CodeLookup | None = None) -> list[str]:
    """Write the non-empty masks as one BINARY DICOM SEG at `path`; returns warnings (skipped masks)."""
    path = Path(path)
    files = scan.provenance.dicom_files
    if scan.provenance.format != "dicom" or not files:
        raise InputError(
            f"DICOM SEG needs DICOM input, but this scan was read from {scan.provenance.format}",
            path=scan.provenance.path, hint="Export NIfTI (--format nifti,multilabel) for this scan instead.")
    shape = scan.grid.shape
    if len(shape) != 3 or len(files) != shape[2]:
        raise InputError(f"the scan's {len(files)} DICOM files do not match its {shape} voxels",
                         path=scan.provenance.path)
    warnings: list[str] = []
    kept: list[Mask] = []
    for mask in masks:
        if mask.data.shape != shape:
            raise InputError(f"mask {mask.name!r} has shape {mask.data.shape}, not the scan's {shape}", path=path)
        if mask.empty:
            warnings.append(f"{mask.name}: empty (not in the field of view), left out of the DICOM SEG")
        else:
            kept.append(mask)
    if not kept:
        raise InputError("every mask is empty, so there is nothing to write as DICOM SEG", path=path)

    unique_files = list(dict.fromkeys(files))
    sources = [_source_header(ref, scan) for ref in unique_files]
    descriptions = [_describe(number, mask, codes, warnings) for number, mask in enumerate(kept, start=1)]
    with warnings_module.catch_warnings():
        # highdicom and pydicom comment on the source's odd values (e.g. single-component patient
        # names); they are the source's, and users get one-line errors, not library warnings
        warnings_module.simplefilter("ignore")
        try:
            segmentation = _segmentation(sources, kept, descriptions, _planes(scan, sources))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"cannot build a DICOM SEG on these source images ({why(exc)})",
                             path=scan.provenance.path) from None
    _save_atomically(segmentation, path)
    return warnings


def _planes(scan: Scan, sources: list[Dataset]) -> dict:
    """For a multi-frame source, each frame's plane spelled out (highdicom matches them to source frames).

    Single-frame sources need nothing: frame k of the SEG is the k-th source file by construction.
    """
    if len(sources) == scan.grid.shape[2] and all(int(s.get("NumberOfFrames", 1) or 1) == 1 for s in sources):
        return {}
    if len(sources) != 1:
        raise InputError(f"the scan's slices come from {len(sources)} multi-frame files; DICOM SEG can "
                         "reference only one multi-frame source image", path=scan.provenance.path)
    lps = LPS_TO_RAS @ np.asarray(scan.affine, dtype=float)  # LPS_TO_RAS is its own inverse
    column_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    orientation = np.concatenate([column_step / np.linalg.norm(column_step), row_step / np.linalg.norm(row_step)])
    patient = hd.CoordinateSystemNames.PATIENT
    return {
        "plane_orientation": hd.PlaneOrientationSequence(patient, [float(v) for v in orientation]),
        "pixel_measures": hd.PixelMeasuresSequence(
            pixel_spacing=(float(np.linalg.norm(row_step)), float(np.linalg.norm(column_step))),
            slice_thickness=float(np.linalg.norm(slice_step)),
            spacing_between_slices=float(np.linalg.norm(slice_step)),
        ),
        "plane_positions": [hd.PlanePositionSequence(patient, [float(v) for v in lps[:3, 3] + k * slice_step])
                            for k in range(scan.grid.shape[2])],
    }


def _segmentation(sources: list[Dataset], kept: list[Mask], descriptions: list, planes: dict) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=_frames(kept),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber") or 0) + 1000,  # beside, not among, the source series
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Prosector",
        manufacturer_model_name="Prosector",
        software_versions=prosector.__version__,
        device_serial_number="0",
        content_description="Prosector segmentation",
        content_label="PROSECTOR",
        **planes,
    )


def _source_header(ref: str, scan: Scan) -> Dataset:
    try:
        header = read_dicom_instance(ref, stop_before_pixels=True)
    except Exception as exc:
        raise InputError(f"cannot re-read the source DICOM instance {ref} ({why(exc)})",
                         path=scan.provenance.path,
                         hint="DICOM SEG references the original files; keep them where they were loaded from.") from None
    if "SpecificCharacterSet" in header and not header.SpecificCharacterSet:
        del header.SpecificCharacterSet  # empty means the default repertoire, which highdicom rejects as ''
    return header


def _frames(masks: list[Mask]) -> np.ndarray:
    """Frames in DICOM order: frame k is mask.data[:, :, k].T, i.e. (rows, columns).

    Non-overlapping masks go as one label map (1 byte per voxel in all); overlapping ones need
    the stacked form, one binary volume per segment.
    """
    shape = masks[0].data.shape
    frames_shape = (shape[2], shape[1], shape[0])  # data.T: (k, j, i) = (frame, row, column)
    # voxel indices in frame order; .T of a Fortran-ordered mask (what nibabel and our readers
    # give) is C-contiguous, so this is one pass over each mask and no copy
    voxels = [np.flatnonzero(np.ascontiguousarray(mask.data.T)) for mask in masks]
    seen = np.zeros(int(np.prod(frames_shape)), dtype=bool)
    overlap = False
    for indices in voxels:
        overlap = overlap or bool(seen[indices].any())
        seen[indices] = True
    if overlap:
        # segment-major memory, so that highdicom's per-segment frames stacked[..., s] stay contiguous
        stacked = np.zeros((len(masks), seen.size), dtype=np.uint8)
        for number, indices in enumerate(voxels):
            stacked[number, indices] = 1
        return stacked.reshape((len(masks),) + frames_shape).transpose(1, 2, 3, 0)
    labels = np.zeros(seen.size, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for number, indices in enumerate(voxels, start=1):
        labels[indices] = number
    return labels.reshape(frames_shape)


def _describe(number: int, mask: Mask, codes: CodeLookup | None, warnings: list[str]) -> hd.seg.SegmentDescription:
    label = mask.label or mask.name
    if len(label) > DICOM_LO_MAX:
        warnings.append(f"{mask.name}: segment label shortened to {DICOM_LO_MAX} characters (the DICOM limit)")
        label = label[:DICOM_LO_MAX]
    known = codes(mask.name) if codes is not None else None
    property_type = Code(known[0], known[1], known[2][:DICOM_LO_MAX]) if known else GENERIC_ANATOMY
    algorithm_type = _algorithm_type(mask)
    identification = None
    if algorithm_type != "MANUAL":  # DICOM requires algorithm identification for all but manual segments
        identification = hd.AlgorithmIdentificationSequence(
            name="Prosector",
            family=ENGINE_FAMILY.get(mask.engine, DEFAULT_FAMILY),
            version=prosector.__version__,
            parameters={"engine": mask.engine},
        )
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=ANATOMY_CATEGORY,
        segmented_property_type=property_type,
        algorithm_type=algorithm_type,
        algorithm_identification=identification,
    )


def _algorithm_type(mask: Mask) -> str:
    if mask.engine == "precomputed":
        # a segmentation the user brought keeps how it was made, when its source said so
        kept = str(mask.provenance.get("algorithm_type") or "AUTOMATIC").upper()
        return kept if kept in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL") else "AUTOMATIC"
    return ENGINE_ALGORITHM_TYPE.get(mask.engine, "AUTOMATIC")


def _save_atomically(dataset: Dataset, path: Path) -> None:
    """Write beside the target and rename, so a failure never leaves a half-written file."""
    if not path.parent.is_dir():
        raise InputError("the folder for the DICOM SEG does not exist", path=path.parent)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        dataset.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, path)
    except OSError as exc:
        raise InputError(f"cannot write the DICOM SEG ({exc.strerror or exc})", path=path) from None
    finally:
        if temporary.exists():
            temporary.unlink()


# --- reading -----------------------------------------------------------------------------------

@dataclass
class _Segment:
    number: int
    label: str
    property_type: dict | None
    category: dict | None
    algorithm_type: str | None
    algorithm_name: str | None


def read_dicom_seg(path: str | Path, scan: Scan) -> list[Mask]:
    """Every segment of the DICOM SEG at `path` as a Mask on `scan`'s exact grid (empty ones kept)."""
    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore")  # pydicom's remarks on odd header values; errors are ours
        return _read_seg_masks(Path(path), scan)


def _read_seg_masks(path: Path, scan: Scan) -> list[Mask]:
    dataset = _read_seg(path)
    seg_frame_of_reference = str(dataset.get("FrameOfReferenceUID") or "") or None
    scan_frame_of_reference = scan.provenance.frame_of_reference_uid
    if seg_frame_of_reference and scan_frame_of_reference and seg_frame_of_reference != scan_frame_of_reference:
        raise InputError(
            f"the DICOM SEG's frame of reference {seg_frame_of_reference} is not the scan's "
            f"({scan_frame_of_reference}): it belongs to another acquisition", path=path,
            hint="Give the segmentation that was made on this scan.")
    grid = scan.grid
    if len(grid.shape) != 3:
        raise InputError(f"the scan has shape {grid.shape}; a DICOM SEG needs a 3D grid", path=path)

    segments = _segments(dataset, path)
    is_labelmap = str(dataset.SOPClassUID) == LABELMAP_SEG_STORAGE
    if is_labelmap:
        segments.pop(0, None)  # a label map may describe pixel value 0, the background: not a structure
    # Fortran order: a frame of the usual axial plane data[:, :, k] is one contiguous block
    volumes = {number: np.zeros(grid.shape, dtype=bool, order="F") for number in segments}
    fractional = str(dataset.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    # a fractional (probability or occupancy) pixel belongs to the segment from one half upward
    half = float(dataset.get("MaximumFractionalValue", 1) or 1) / 2.0
    number_of_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    if number_of_frames > 1 and len(per_frame) != number_of_frames:
        raise InputError(f"the DICOM SEG has {number_of_frames} frames but {len(per_frame)} per-frame "
                         "descriptions; its frames cannot be placed", path=path)
    try:
        frames = iter_pixels(dataset)
        for index, frame in enumerate(frames):
            groups = per_frame[index] if per_frame else None
            placement = _place_frame(path, index, groups, shared, frame.shape, grid)
            if is_labelmap:
                for number in np.unique(frame[frame > 0]):
                    if int(number) not in volumes:
                        raise InputError(f"frame {index + 1} holds label {number}, which no segment describes", path=path)
                    placement.paint(volumes[int(number)], frame == number, path, index)
            else:
                number = _frame_segment(groups, shared, segments, path, index)
                placement.paint(volumes[number], frame >= half if fractional else frame > 0, path, index)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot decode the DICOM SEG's pixel data ({why(exc)})", path=path) from None

    return [
        Mask(
            name=seg.label,
            data=volumes[seg.number],
            engine="precomputed",
            label=seg.label,
            provenance={
                "file": str(path),
                "segment_number": seg.number,
                "segment_label": seg.label,
                "property_type": seg.property_type,
                "property_category": seg.category,
                "snomed_code": seg.property_type["value"] if seg.property_type and seg.property_type["scheme"] == "SCT" else None,
                "algorithm_type": seg.algorithm_type,
                "algorithm_name": seg.algorithm_name,
                "series_uid": str(dataset.get("SeriesInstanceUID") or "") or None,
            },
        )
        for seg in segments.values()
    ]


def _read_seg(path: Path) -> Dataset:
    if not path.is_file():
        raise InputError("no such DICOM SEG file", path=path)
    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        raise InputError("not a DICOM file (no DICM marker)", path=path) from None
    except Exception as exc:
        raise InputError(f"unreadable or corrupt DICOM file ({why(exc)})", path=path) from None
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class not in (SEG_STORAGE, LABELMAP_SEG_STORAGE):
        name = getattr(dataset.get("SOPClassUID"), "name", sop_class) or "none"
        raise InputError(f"not a DICOM SEG (its SOP class is {name})", path=path)
    if "PixelData" not in dataset:
        raise InputError("the DICOM SEG has no pixel data", path=path)
    return dataset


def _code(sequence) -> dict | None:
    if not sequence:
        return None
    item = sequence[0]
    return {"value": str(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue") or ""),
            "scheme": str(item.get("CodingSchemeDesignator", "")),
            "meaning": str(item.get("CodeMeaning", ""))}


def _segments(dataset: Dataset, path: Path) -> dict[int, _Segment]:
    segments: dict[int, _Segment] = {}
    for item in dataset.get("SegmentSequence") or []:
        number = int(item.SegmentNumber)
        algorithm = _first_item(item, "SegmentationAlgorithmIdentificationSequence")
        segments[number] = _Segment(
            number=number,
            label=str(item.get("SegmentLabel") or f"segment_{number}"),
            property_type=_code(item.get("SegmentedPropertyTypeCodeSequence")),
            category=_code(item.get("SegmentedPropertyCategoryCodeSequence")),
            algorithm_type=str(item.get("SegmentAlgorithmType") or "") or None,
            algorithm_name=str(item.get("SegmentAlgorithmName") or (algorithm and algorithm.get("AlgorithmName")) or "") or None,
        )
    if not segments:
        raise InputError("the DICOM SEG describes no segments (empty SegmentSequence)", path=path)
    return segments


def _first_item(dataset: Dataset | None, keyword: str) -> Dataset | None:
    if dataset is None:
        return None
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _functional(groups: Dataset | None, shared: Dataset | None, keyword: str) -> Dataset | None:
    """A functional group's first item, per-frame first, then shared (PS3.3 C.7.6.16)."""
    return _first_item(groups, keyword) or _first_item(shared, keyword)


def _frame_segment(groups, shared, segments: dict[int, _Segment], path: Path, index: int) -> int:
    identification = _functional(groups, shared, "SegmentIdentificationSequence")
    if identification is None:
        if len(segments) == 1:
            return next(iter(segments))
        raise InputError(f"frame {index + 1} of the DICOM SEG does not say which segment it belongs to", path=path)
    number = int(identification.ReferencedSegmentNumber)
    if number not in segments:
        raise InputError(f"frame {index + 1} refers to segment {number}, which the SEG does not describe", path=path)
    return number


@dataclass
class _Placement:
    """Where one frame's pixels go: frame pixel (row r, column c) -> voxel index tuple."""

    voxel_axis_of_rows: int
    voxel_axis_of_columns: int
    slice_axis: int
    start: np.ndarray  # voxel index of pixel (0, 0)
    row_sign: int
    column_sign: int
    grid_shape: tuple[int, ...]

    def paint(self, volume: np.ndarray, pixels: np.ndarray, path: Path, index: int) -> None:
        """OR `pixels` (rows, columns) into `volume`; set pixels off the grid are an error."""
        if not pixels.any():
            return
        slice_idx = int(self.start[self.slice_axis])
        if not 0 <= slice_idx < self.grid_shape[self.slice_axis]:
            self._outside(path, index)
        selector: list = [slice_idx, slice_idx, slice_idx]
        kept = []
        for frame_axis, (voxel_axis, sign) in enumerate(((self.voxel_axis_of_rows, self.row_sign),
                                                         (self.voxel_axis_of_columns, self.column_sign))):
            first, count, size = int(self.start[voxel_axis]), pixels.shape[frame_axis], self.grid_shape[voxel_axis]
            # frame pixels p whose voxel first + sign * p falls inside 0..size-1
            low, high = (max(0, -first), min(count, size - first)) if sign > 0 else (max(0, first - size + 1), min(count, first + 1))
            if high <= low:
                self._outside(path, index)
            kept.append(slice(low, high))
            begin, end = first + sign * low, first + sign * (high - 1)
            selector[voxel_axis] = slice(begin, end + 1) if sign > 0 else slice(begin, end - 1 if end > 0 else None, -1)
        inside = pixels[kept[0], kept[1]]
        if np.count_nonzero(inside) != np.count_nonzero(pixels):
            self._outside(path, index)
        view = volume[tuple(selector)]  # a view with the two in-plane axes in grid order
        view |= inside if self.voxel_axis_of_rows < self.voxel_axis_of_columns else inside.T

    @staticmethod
    def _outside(path: Path, index: int) -> None:
        raise InputError(f"frame {index + 1} of the DICOM SEG marks voxels outside the scan's grid", path=path,
                         hint="The segmentation was made on a larger or shifted volume.")


def _place_frame(path: Path, index: int, groups, shared, frame_shape: tuple[int, ...], grid: Grid) -> _Placement:
    """Map a frame onto the grid from its plane position, orientation and pixel spacing."""
    position_item = _functional(groups, shared, "PlanePositionSequence")
    orientation_item = _functional(groups, shared, "PlaneOrientationSequence")
    measures = _functional(groups, shared, "PixelMeasuresSequence")
    if position_item is None or orientation_item is None or measures is None or "PixelSpacing" not in measures:
        raise InputError(f"frame {index + 1} of the DICOM SEG lacks its plane position, orientation or "
                         "pixel spacing, so it cannot be placed on the scan", path=path)
    to_ras = LPS_TO_RAS[:3, :3]
    origin = to_ras @ np.asarray([float(v) for v in position_item.ImagePositionPatient])
    cosines = np.asarray([float(v) for v in orientation_item.ImageOrientationPatient]).reshape(2, 3)
    row_spacing, column_spacing = (float(v) for v in measures.PixelSpacing)
    column_step = to_ras @ cosines[0] * column_spacing  # one column further along a row
    row_step = to_ras @ cosines[1] * row_spacing        # one row further down a column

    inverse = np.linalg.inv(grid.affine)
    start_continuous = inverse[:3, :3] @ origin + inverse[:3, 3]
    column_voxels = inverse[:3, :3] @ column_step
    row_voxels = inverse[:3, :3] @ row_step
    column_axis = int(np.argmax(np.abs(column_voxels)))
    row_axis = int(np.argmax(np.abs(row_voxels)))
    if column_axis == row_axis:
        raise InputError(f"frame {index + 1} of the DICOM SEG is not in a plane of the scan's grid", path=path)
    placement = _Placement(
        voxel_axis_of_rows=row_axis,
        voxel_axis_of_columns=column_axis,
        slice_axis=3 - row_axis - column_axis,
        start=np.round(start_continuous).astype(int),
        row_sign=int(np.sign(row_voxels[row_axis])),
        column_sign=int(np.sign(column_voxels[column_axis])),
        grid_shape=tuple(grid.shape),
    )
    # the frame's corner pixels must sit on voxel centres; in between, both maps are linear
    rows, columns = frame_shape
    worst = 0.0
    for r in (0, rows - 1):
        for c in (0, columns - 1):
            frame_world = origin + c * column_step + r * row_step
            voxel = placement.start.astype(float)
            voxel[row_axis] += placement.row_sign * r
            voxel[column_axis] += placement.column_sign * c
            worst = max(worst, float(np.linalg.norm(grid.world(voxel) - frame_world)))
    if worst > GRID_TOLERANCE_MM:
        raise InputError(
            f"frame {index + 1} of the DICOM SEG does not lie on the scan's grid (off by {worst:.4f} mm; "
            f"the limit is {GRID_TOLERANCE_MM} mm)", path=path,
            hint="The segmentation was made on another grid; resample it onto this scan first.")
    return placement
