"""Reading a DICOM series (a folder, a .zip or one file) into a Scan on the series' own grid.

Voxel layout, which the rest of Prosector relies on: data[i, j, k] with i the column index (along
the row direction cosine), j the row index (along the column direction cosine) and k the slice
index sorted by position along the slice normal cross(row cosine, column cosine).
The affine is built in LPS from the tags and then turned into RAS+ (the first two rows negated).
"""
from __future__ import annotations

import io
import warnings as warnings_module
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from prosector.errors import InputError
from prosector.scan import Provenance, Scan

# "zip-path::member" names one member of a zip archive in provenance.dicom_files.
ZIP_MEMBER_SEP = "::"

MODALITY_BY_TAG = {
    "CT": "ct", "MR": "mr", "PT": "pet", "US": "us",
    "CR": "xray", "DX": "xray", "XA": "xray", "RF": "xray", "MG": "xray",
}
# Instances of these modalities carry no image of the patient to segment (SEG, reports, plans...).
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC", "PLAN"}
# Consecutive slice distances may differ from the median step by this fraction before we call it a gap.
GAP_TOLERANCE = 0.10
# Direction cosines and pixel spacings that differ by less than this are the same.
GEOMETRY_TOLERANCE = 1e-4
# Patient orientation letters (PS3.3 C.7.6.1.1.1) as LPS unit vectors, for images without IOP/IPP.
LPS_LETTER = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class _Instance:
    """One image instance found while scanning: where it is and its header (no pixels)."""

    ref: str  # a file path, or "zip-path::member"
    header: Dataset


@dataclass
class _Slice:
    """One 2D image of a series: a single-frame instance, or one frame of a multi-frame instance."""

    ref: str
    header: Dataset
    frame: int | None              # 0-based frame of a multi-frame instance; None for single-frame
    position: np.ndarray | None    # ImagePositionPatient (LPS mm)
    cosines: np.ndarray | None     # row and column direction cosines, 2x3
    spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    rescale: tuple[float, float]   # (slope, intercept)

    @property
    def series_uid(self) -> str:
        return str(self.header.get("SeriesInstanceUID", "") or "(no SeriesInstanceUID)")

    @property
    def name(self) -> str:
        return self.ref if self.frame is None else f"{self.ref} (frame {self.frame + 1})"


def why(exc: BaseException) -> str:
    """An exception as a short single line, for the one-line errors users see."""
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text[:200]}"


def read_dicom_instance(ref: str, stop_before_pixels: bool = False) -> Dataset:
    """Read one instance named as in provenance.dicom_files: a path or "zip-path::member"."""
    archive, sep, member = ref.partition(ZIP_MEMBER_SEP)
    # force: the loader already knows this is DICOM, possibly without the 128-byte preamble
    if sep and zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            dataset = pydicom.dcmread(io.BytesIO(zf.read(member)), stop_before_pixels=stop_before_pixels, force=True)
    else:
        dataset = pydicom.dcmread(ref, stop_before_pixels=stop_before_pixels, force=True)
    return _with_transfer_syntax(dataset)


def _with_transfer_syntax(dataset: Dataset) -> Dataset:
    """A file without meta group still needs its transfer syntax named to decode its pixels."""
    if "TransferSyntaxUID" not in dataset.file_meta:
        implicit, little = dataset.original_encoding
        dataset.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return dataset


def load_dicom_series(path: str | Path, series_uid: str | None = None, modality: str | None = None) -> Scan:
    """Load the DICOM series at `path`; with several series, the one named or else the largest."""
    with warnings_module.catch_warnings():
        # pydicom warns about every odd value in real-world headers; what matters reaches the user
        # as our own one-line errors and scan.warnings, not as library warnings on stderr
        warnings_module.simplefilter("ignore")
        return _load(Path(path), series_uid, modality)


def _load(path: Path, series_uid: str | None, modality: str | None) -> Scan:
    instances, skipped = _find_image_instances(path)
    if not instances:
        raise InputError(
            f"no DICOM images found (looked at {skipped} file{'s' if skipped != 1 else ''}, none a DICOM image)",
            path=path,
            hint="Give a folder or .zip holding the DICOM files of one series.",
        )
    slices = [one for inst in instances for one in _slices_of(path, inst)]
    chosen, note = _choose_series(path, slices, series_uid)
    _check_greyscale(path, chosen)
    warnings = [note] if note else []
    chosen = _sorted_by_position(path, chosen)
    geometry = _series_geometry(path, chosen, warnings)
    data = _read_pixels(path, chosen)
    first = chosen[0].header
    scan_modality = _modality(first, modality, warnings)
    provenance = Provenance(
        path=str(path),
        format="dicom",
        study_uid=_str_or_none(first.get("StudyInstanceUID")),
        series_uid=_str_or_none(first.get("SeriesInstanceUID")),
        frame_of_reference_uid=_str_or_none(first.get("FrameOfReferenceUID")),
        series_description=_str_or_none(first.get("SeriesDescription")),
        dicom_files=[one.ref for one in chosen],  # a multi-frame file repeats, once per frame
    )
    is_2d = geometry.projection or (len(chosen) == 1 and scan_modality in ("xray", "us"))
    return Scan(data=data, affine=geometry.affine, modality=scan_modality, provenance=provenance,
                is_2d=is_2d, warnings=warnings)


# --- finding the files -------------------------------------------------------------------------

def _find_image_instances(path: Path) -> tuple[list[_Instance], int]:
    """Headers of every DICOM image instance under `path`, and how many other files were skipped."""
    instances: list[_Instance] = []
    skipped = 0
    for ref, opener in _candidate_files(path):
        try:
            with opener() as fp:
                header = _read_header(fp)
        except InvalidDicomError:
            skipped += 1  # not DICOM: a README, a thumbnail, a DICOMDIR's neighbours...
            continue
        except Exception as exc:  # a file that claims to be DICOM but cannot be parsed
            raise InputError(f"unreadable or corrupt DICOM file {ref} ({why(exc)})",
                             path=path, hint="Re-export the series or remove the broken file.") from None
        if _is_image(header):
            instances.append(_Instance(ref, header))
        else:
            skipped += 1
    return instances, skipped


def _read_header(fp) -> Dataset:
    """The header of a DICOM file; files without the 128-byte preamble are read when they start
    with a group 0008 element, as old exports do (anything else is not DICOM)."""
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        fp.seek(0)
        if fp.read(2) != b"\x08\x00":
            raise
        fp.seek(0)
        return pydicom.dcmread(fp, stop_before_pixels=True, force=True)


def _candidate_files(path: Path) -> Iterator[tuple[str, object]]:
    """(ref, opener) for every file in a folder (recursively), a zip archive, or a single file.

    Refs are absolute, so that DICOM SEG export can re-read the instances from any working folder.
    """
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield str(file.resolve()), (lambda f=file: open(f, "rb"))
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(info.filename for info in zf.infolist() if not info.is_dir())
                for name in names:
                    # members are read into memory: nothing is extracted to disk
                    yield f"{path.resolve()}{ZIP_MEMBER_SEP}{name}", (lambda n=name: io.BytesIO(zf.read(n)))
        except zipfile.BadZipFile as exc:
            raise InputError(f"corrupt zip archive ({why(exc)})", path=path) from None
    elif path.is_file():
        yield str(path.resolve()), (lambda: open(path, "rb"))
    else:
        raise InputError("no such file or folder", path=path)


def _is_image(header: Dataset) -> bool:
    modality = str(header.get("Modality", "")).upper()
    return "Rows" in header and "Columns" in header and modality not in NON_IMAGE_MODALITIES


def _slices_of(path: Path, inst: _Instance) -> list[_Slice]:
    """The 2D images of one instance, with their geometry from the classic or the enhanced tags."""
    header = inst.header
    frames = int(header.get("NumberOfFrames", 1) or 1)
    shared = _first_item(header, "SharedFunctionalGroupsSequence")
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None and shared is None:
        if frames > 1:
            # a cine loop or multi-frame capture: frames without positions, refused only if chosen
            return [_Slice(inst.ref, header, index, None, None, _pixel_spacing(header), _rescale(header))
                    for index in range(frames)]
        return [_Slice(inst.ref, header, None, _position(header), _orientation(header), _pixel_spacing(header),
                       _rescale(header))]
    if per_frame is None or len(per_frame) != frames:
        raise InputError(f"{inst.ref} declares {frames} frames but describes {len(per_frame or [])} of them",
                         path=path, hint="The enhanced DICOM file is incomplete; re-export it.")
    slices = []
    for index, groups in enumerate(per_frame):
        # functional groups: per-frame values first, then the shared ones (PS3.3 C.7.6.16)
        position = _group(groups, shared, "PlanePositionSequence")
        orientation = _group(groups, shared, "PlaneOrientationSequence")
        measures = _group(groups, shared, "PixelMeasuresSequence")
        transform = _group(groups, shared, "PixelValueTransformationSequence")
        slices.append(_Slice(
            inst.ref, header, index,
            _position(position) if position is not None else None,
            _orientation(orientation) if orientation is not None else None,
            _pixel_spacing(measures) if measures is not None else _pixel_spacing(header),
            _rescale(transform if transform is not None else header),
        ))
    return slices


def _first_item(dataset: Dataset | None, keyword: str) -> Dataset | None:
    if dataset is None:
        return None
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _group(groups: Dataset | None, shared: Dataset | None, keyword: str) -> Dataset | None:
    item = _first_item(groups, keyword)
    return item if item is not None else _first_item(shared, keyword)


def _choose_series(path: Path, slices: list[_Slice], series_uid: str | None) -> tuple[list[_Slice], str | None]:
    """The requested series, or the one with most slices (and a sentence saying so)."""
    by_series: dict[str, list[_Slice]] = {}
    for one in slices:
        by_series.setdefault(one.series_uid, []).append(one)
    # most slices first; ties broken by UID so the choice never depends on file order
    ranked = sorted(by_series.items(), key=lambda item: (-len(item[1]), item[0]))
    if series_uid is not None:
        if series_uid not in by_series:
            raise InputError(
                f"series {series_uid} not found; available: {_describe_series(ranked)}",
                path=path, hint="Pass one of these SeriesInstanceUIDs.",
            )
        return by_series[series_uid], None
    if len(ranked) == 1:
        return ranked[0][1], None
    uid, chosen = ranked[0]
    note = (f"{path} holds {len(ranked)} series; using the largest, SeriesInstanceUID {uid} "
            f"({_describe_one(chosen)}); the others: {_describe_series(ranked[1:])}. "
            "Choose another with --series UID.")
    return chosen, note


def _describe_one(slices: list[_Slice]) -> str:
    desc = str(slices[0].header.get("SeriesDescription", "") or "").strip()
    count = f"{len(slices)} slice{'s' if len(slices) != 1 else ''}"
    return f"{count}, '{desc}'" if desc else count


def _describe_series(ranked: list[tuple[str, list[_Slice]]]) -> str:
    return "; ".join(f"{uid} ({_describe_one(slices)})" for uid, slices in ranked)


# --- geometry ----------------------------------------------------------------------------------

@dataclass
class _Geometry:
    affine: np.ndarray
    projection: bool  # no patient geometry in the tags: a projection image, flagged 2D


def _orientation(header: Dataset) -> np.ndarray | None:
    """(row cosine, column cosine) as a 2x3 array, or None when the tag is absent."""
    iop = header.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    cosines = np.asarray([float(v) for v in iop], dtype=float).reshape(2, 3)
    norms = np.linalg.norm(cosines, axis=1)
    if np.any(norms < 1e-6):
        return None
    return cosines / norms[:, None]


def _position(header: Dataset) -> np.ndarray | None:
    ipp = header.get("ImagePositionPatient")
    if ipp is None or len(ipp) != 3:
        return None
    return np.asarray([float(v) for v in ipp], dtype=float)


def _pixel_spacing(header: Dataset) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm: the distance between rows, then between columns."""
    spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing")
    if spacing is None or len(spacing) != 2:
        return None
    return float(spacing[0]), float(spacing[1])


def _sorted_by_position(path: Path, slices: list[_Slice]) -> list[_Slice]:
    """Slices in order along the normal; orientation consistency is checked first."""
    first = slices[0]
    if first.cosines is None or any(one.position is None for one in slices):
        if len(slices) > 1:
            raise InputError(
                f"{len(slices)} images lack ImagePositionPatient/ImageOrientationPatient, "
                "so they cannot be stacked into a volume", path=path,
                hint="Give a series with patient geometry, or a single projection image.")
        return slices
    for one in slices[1:]:
        if one.cosines is None or not np.allclose(one.cosines, first.cosines, atol=GEOMETRY_TOLERANCE):
            raise InputError(
                f"inconsistent ImageOrientationPatient within the series: {one.name} has "
                f"{_fmt(one.cosines)} but {first.name} has {_fmt(first.cosines)}", path=path,
                hint="The series mixes image planes (a localizer?); remove the odd files or pick another series.")
    normal = np.cross(first.cosines[0], first.cosines[1])
    return sorted(slices, key=lambda one: float(one.position @ normal))


def _series_geometry(path: Path, slices: list[_Slice], warnings: list[str]) -> _Geometry:
    first = slices[0]
    rows, cols = int(first.header.Rows), int(first.header.Columns)
    spacing = first.spacing
    for one in slices[1:]:
        if (int(one.header.Rows), int(one.header.Columns)) != (rows, cols):
            raise InputError(
                f"inconsistent image size within the series: {one.name} is {one.header.Rows}x{one.header.Columns} "
                f"(rows x columns) but {first.name} is {rows}x{cols}", path=path)
        if (one.spacing is None) != (spacing is None) or (
                spacing is not None and not np.allclose(one.spacing, spacing, rtol=GEOMETRY_TOLERANCE, atol=0)):
            raise InputError(
                f"inconsistent PixelSpacing within the series: {one.name} has {one.spacing} but "
                f"{first.name} has {spacing}", path=path)
    if spacing is None:
        warnings.append(f"{path}: no PixelSpacing in the DICOM header; assuming 1 mm pixels, so sizes in mm are unreliable")
        spacing = (1.0, 1.0)
    if first.cosines is None or first.position is None:
        return _Geometry(_projection_affine(path, first.header, spacing, warnings), projection=True)

    row_cos, col_cos = first.cosines
    normal = np.cross(row_cos, col_cos)
    positions = np.array([one.position for one in slices])
    step = _slice_step(path, slices, positions, normal)

    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]  # i runs along a row: one column further, column spacing
    lps[:3, 1] = col_cos * spacing[0]  # j runs down a column: one row further, row spacing
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    tilt = np.degrees(np.arccos(np.clip(abs(step @ normal) / np.linalg.norm(step), -1, 1)))
    if tilt > 0.01:
        warnings.append(f"{path}: slices are stacked at {tilt:.2f} degrees to their normal (gantry tilt); "
                        "the grid is sheared and kept exactly as acquired")
    return _Geometry(LPS_TO_RAS @ lps, projection=False)


def _slice_step(path: Path, slices: list[_Slice], positions: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """The vector from one slice to the next; gaps, duplicates and misaligned slices are errors."""
    if len(slices) == 1:
        header = slices[0].header
        measures = _group(None, _first_item(header, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence")
        source = measures if measures is not None else header
        thickness = float(source.get("SpacingBetweenSlices") or source.get("SliceThickness") or 1.0)
        return normal * abs(thickness)
    along = positions @ normal
    gaps = np.diff(along)
    for index in np.flatnonzero(gaps < 1e-3):
        raise InputError(
            f"duplicate slice position {along[index]:.3f} mm along the slice normal: "
            f"{slices[index].name} and {slices[index + 1].name}", path=path,
            hint="The folder mixes acquisitions (echoes, phases or copies) of one series; keep one of each position.")
    median = float(np.median(gaps))
    for index in np.flatnonzero(gaps > (1 + GAP_TOLERANCE) * median):
        missing = max(1, round(gaps[index] / median) - 1)
        expected = positions[index] + (positions[index + 1] - positions[index]) / (missing + 1)
        raise InputError(
            f"missing slice: {gaps[index]:.3f} mm between the slices at {along[index]:.3f} and "
            f"{along[index + 1]:.3f} mm along the slice normal where the series steps {median:.3f} mm; "
            f"expected a slice at ImagePositionPatient {_fmt(expected)} "
            f"(between {slices[index].name} and {slices[index + 1].name})", path=path,
            hint="Export the complete series; a volume with a hole would put anatomy in the wrong place.")
    for index in np.flatnonzero(gaps < (1 - GAP_TOLERANCE) * median):
        raise InputError(
            f"irregular slice spacing: the slices at {along[index]:.3f} and {along[index + 1]:.3f} mm along the "
            f"slice normal are {gaps[index]:.3f} mm apart where the series steps {median:.3f} mm "
            f"({slices[index].name} and {slices[index + 1].name})", path=path,
            hint="The folder mixes overlapping reconstructions; give one regular series.")
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    predicted = positions[0] + np.arange(len(positions))[:, None] * step
    worst = int(np.argmax(np.linalg.norm(positions - predicted, axis=1)))
    if np.linalg.norm(positions[worst] - predicted[worst]) > GAP_TOLERANCE * np.linalg.norm(step):
        raise InputError(
            f"slices do not lie on one regular grid: {slices[worst].name} sits at {_fmt(positions[worst])}, "
            f"off the line through the first and last slice", path=path)
    return step


def _projection_affine(path: Path, header: Dataset, spacing: tuple[float, float], warnings: list[str]) -> np.ndarray:
    """An affine for an image without patient geometry, from PatientOrientation where given."""
    letters = [str(v).upper() for v in (header.get("PatientOrientation") or [])]
    if len(letters) == 2 and all(letters) and all(c in LPS_LETTER for word in letters for c in word):
        row_cos, col_cos = (np.sum([LPS_LETTER[c] for c in word], axis=0) for word in letters)
        row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
        warnings.append(f"{path}: projection image without patient position; directions from PatientOrientation {letters}")
    else:
        # a frontal radiograph as conventionally displayed: rows toward the patient's left, columns down
        row_cos, col_cos = np.array([1.0, 0, 0]), np.array([0, 0, -1.0])
        warnings.append(f"{path}: no patient geometry (ImageOrientationPatient/PatientOrientation); "
                        "left and right in this image are assumed, not known")
    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]
    lps[:3, 1] = col_cos * spacing[0]
    lps[:3, 2] = np.cross(row_cos, col_cos)
    return LPS_TO_RAS @ lps


def _check_greyscale(path: Path, slices: list[_Slice]) -> None:
    for one in slices:
        if int(one.header.get("SamplesPerPixel", 1) or 1) != 1:
            raise InputError(f"{one.ref} is a colour image ({one.header.get('PhotometricInterpretation')}); "
                             "only greyscale scans can be segmented", path=path)


# --- pixels ------------------------------------------------------------------------------------

def _read_pixels(path: Path, slices: list[_Slice]) -> np.ndarray:
    """Stack the slices into data[i, j, k], applying each slice's rescale slope and intercept."""
    first = slices[0].header
    rows, cols = int(first.Rows), int(first.Columns)
    integral = all(float(s).is_integer() and float(b).is_integer() for s, b in (one.rescale for one in slices))
    # int16 keeps HU exactly at half the memory; anything else (or out of range) goes to float32
    data = np.empty((cols, rows, len(slices)), dtype=np.int16 if integral else np.float32, order="F")
    multiframe: dict[str, np.ndarray] = {}  # a multi-frame file is decoded once, for all its frames
    for k, one in enumerate(slices):
        raw = _slice_pixels(path, one, multiframe)
        if raw.shape != (rows, cols):
            raise InputError(f"pixel data of {one.name} has shape {raw.shape}, expected {rows}x{cols}", path=path)
        slope, intercept = one.rescale
        if data.dtype == np.int16 and raw.dtype.kind == "f":
            data = data.astype(np.float32, order="F")  # float pixel data: nothing integral to keep
        if data.dtype == np.int16:
            values = raw.astype(np.int64) * int(slope) + int(intercept)
            if values.min() < np.iinfo(np.int16).min or values.max() > np.iinfo(np.int16).max:
                data = data.astype(np.float32, order="F")  # this series does not fit int16 after all
                values = values.astype(np.float32)
        else:
            values = raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        data[:, :, k] = values.T  # (rows, cols) -> (i = column, j = row)
    return data


def _slice_pixels(path: Path, one: _Slice, multiframe: dict[str, np.ndarray]) -> np.ndarray:
    try:
        if one.frame is None:
            return read_dicom_instance(one.ref).pixel_array
        if one.ref not in multiframe:
            multiframe[one.ref] = read_dicom_instance(one.ref).pixel_array
        frames = multiframe[one.ref]
        return frames[one.frame] if frames.ndim == 3 else frames
    except Exception as exc:
        syntax = getattr(getattr(one.header, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        raise InputError(
            f"cannot read the pixel data of {one.name} (transfer syntax {name}; {why(exc)})",
            path=path, hint="The file is truncated, or compressed in a way that needs pylibjpeg or GDCM installed.") from None


def _rescale(header: Dataset) -> tuple[float, float]:
    slope = header.get("RescaleSlope")
    intercept = header.get("RescaleIntercept")
    return (float(slope) if slope not in (None, "") else 1.0,
            float(intercept) if intercept not in (None, "") else 0.0)


# --- modality ----------------------------------------------------------------------------------

def _modality(header: Dataset, requested: str | None, warnings: list[str]) -> str:
    tag = str(header.get("Modality", "") or "").upper()
    from_tag = MODALITY_BY_TAG.get(tag, "unknown")
    if requested is None:
        return from_tag
    if from_tag != "unknown" and from_tag != requested:
        warnings.append(f"the DICOM Modality tag says {tag} but {requested.upper()} was requested; using {requested.upper()}")
    return requested


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _fmt(vector: np.ndarray | None) -> str:
    if vector is None:
        return "(none)"
    return "(" + ", ".join(f"{float(v):.3f}" for v in np.ravel(vector)) + ")"
