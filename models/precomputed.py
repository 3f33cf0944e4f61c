"""The `precomputed` engine: masks from a segmentation the user already has.

Sources: a TotalSegmentator output folder (one NIfTI per class), a multilabel NIfTI/NRRD/MGZ
(names from its label-table extension, a sidecar JSON, `--class-map`, or the installed
totalsegmentator package), or a DICOM SEG. Everything is put on the scan's exact grid by a
lossless reordering, or refused. Empty masks mean "not in the field of view" and are kept.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from prosector.models.base import Engine, Readiness, SegmentOptions
from prosector.errors import InputError
from prosector.geometry import align_to_grid
from prosector.mask import Mask
from prosector.scan import Scan

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# Segmentation Storage and Label Map Segmentation Storage
SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")


def safe_name(label: str) -> str:
    """A label as a structure id and file name: words joined by underscores, case kept (vertebrae_L3)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", label.strip()).strip("_")
    return name or "unnamed"


def parse_class_map(spec: str | Path | dict | None) -> dict[int, str] | None:
    """`{index: name}` from a flat JSON file, `FILE#TASK` for a nested one, or a TotalSegmentator task name."""
    if spec is None or isinstance(spec, dict):
        return {int(k): str(v) for k, v in spec.items()} if spec else None
    text = str(spec)
    path_text, _, task = text.partition("#")
    path = Path(path_text)
    if path.suffix.lower() == ".json" or path.exists():
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"class map cannot be read as JSON ({err})", path=path) from None
        if task:
            if task not in content:
                raise InputError(f"class map has no task {task!r} (it has {', '.join(content)})", path=path)
            content = content[task]
        if not isinstance(content, dict) or not all(isinstance(v, str) for v in content.values()):
            raise InputError('class map must be a flat JSON object {"1": "spleen", ...} '
                             "(use FILE#TASK to pick one task of a nested map)", path=path)
        try:
            return {int(k): v for k, v in content.items()}
        except ValueError:
            raise InputError("class map keys must be label numbers", path=path) from None
    return totalsegmentator_class_map(text)


def totalsegmentator_class_map(task: str) -> dict[int, str]:
    try:
        from totalsegmentator.map_to_binary import class_map  # type: ignore
    except ImportError:
        raise InputError(f"--class-map {task}: no such file, and the totalsegmentator package is not installed",
                         hint='Give a JSON file {"1": "spleen", ...}.') from None
    if task not in class_map:
        raise InputError(f"--class-map {task}: not a TotalSegmentator task")
    return {int(k): v for k, v in class_map[task].items()}


class PrecomputedEngine(Engine):
    name = "precomputed"
    cost = "low"

    def __init__(self, source: str | Path, class_map: str | Path | dict | None = None):
        self.source = Path(source)
        self.class_map = parse_class_map(class_map)
        self._cache: dict[int, list[Mask]] = {}
        self._names: set[str] | None = None

    # -- Engine interface ---------------------------------------------------------------------
    def cache_key(self) -> str | None:
        return None  # reading the user's file is already as cheap as a cache

    def readiness(self) -> Readiness:
        if self.source.exists():
            return Readiness(True)
        return Readiness(False, f"{self.source} does not exist", "give an existing segmentation with --seg")

    def vocabulary(self, modality: str) -> set[str]:
        """The structures the user's segmentation holds, whatever the modality."""
        if self._names is None:
            self._names = self._read_names()
        return self._names

    def _read_names(self) -> set[str]:
        if not self.source.exists():
            return set()
        if self.source.is_dir():
            return {safe_name(_stem(p)) for p in self._nifti_files()}
        if _is_dicom_seg(self.source):
            import pydicom

            ds = pydicom.dcmread(str(self.source), stop_before_pixels=True)
            return {safe_name(str(s.SegmentLabel)).lower() for s in ds.SegmentSequence}
        data, _, table = _read_label_volume(self.source)
        names = self.class_map or table or _sidecar_map(self.source)
        if names is None:
            values = [int(v) for v in np.unique(data) if v != 0]
            names = {values[0]: _stem(self.source)} if len(values) == 1 else {v: f"label_{v}" for v in values}
        return {safe_name(n) for n in names.values()}

    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        available = {m.name: m for m in self.load(scan)}
        missing = [s for s in structures if s not in available]
        if missing:
            raise InputError(f"the segmentation has no {', '.join(missing)}", path=self.source,
                             hint=f"It holds: {', '.join(sorted(available)) or 'nothing'}.")
        return [available[s] for s in structures]

    # -- reading ------------------------------------------------------------------------------
    def load(self, scan: Scan) -> list[Mask]:
        """Every structure in the source, on `scan`'s grid, in the source's order."""
        key = id(scan)
        if key not in self._cache:
            started = time.perf_counter()
            if not self.source.exists():
                raise InputError("no such segmentation file or folder", path=self.source)
            if self.source.is_dir():
                masks = self._from_folder(scan)
            elif _is_dicom_seg(self.source):
                masks = self._from_dicom_seg(scan)
            else:
                masks = self._from_multilabel(scan)
            seconds = time.perf_counter() - started
            for mask in masks:
                mask.provenance.setdefault("seconds", round(seconds, 4))
            self._cache[key] = masks
        return self._cache[key]

    def _nifti_files(self) -> list[Path]:
        return sorted(p for p in self.source.iterdir() if p.name.lower().endswith(NIFTI_SUFFIXES))

    def _from_folder(self, scan: Scan) -> list[Mask]:
        from prosector.io.nifti import read_nifti_image

        files = self._nifti_files()
        if not files:
            raise InputError("folder holds no NIfTI masks (*.nii.gz)", path=self.source,
                             hint="Give a TotalSegmentator output folder, a multilabel file or a DICOM SEG.")
        masks = []
        for path in files:
            img, data = read_nifti_image(path)
            data = align_to_grid(data, img.affine, scan.grid, what=f"segmentation {path.name}")
            masks.append(Mask(safe_name(_stem(path)), data > 0, self.name,
                              {"source": str(path), "kind": "binary file"}))
        return masks

    def _from_multilabel(self, scan: Scan) -> list[Mask]:
        data, affine, table = _read_label_volume(self.source)
        data = align_to_grid(data, affine, scan.grid, what=f"segmentation {self.source.name}")
        values = [int(v) for v in np.unique(data) if v != 0]
        names = self.class_map or table or _sidecar_map(self.source)
        warnings = []
        if names is None:
            if len(values) == 1:
                names = {values[0]: _stem(self.source)}
                warnings.append(f"no label names in {self.source.name}; its one label is named after the file")
            else:
                names = {v: f"label_{v}" for v in values}
                warnings.append(f"no label names in {self.source.name}; labels are named label_N "
                                "(give --class-map to name them)")
        unknown = [v for v in values if v not in names]
        if unknown:
            raise InputError(f"labels {unknown[:10]} are not in the class map", path=self.source,
                             hint="Give the class map this segmentation was written with (--class-map).")
        origin = {"source": str(self.source), "kind": "multilabel"}
        masks = [Mask(safe_name(name), data == index, self.name, {**origin, "label_value": index}, label=name)
                 for index, name in sorted(names.items())]
        for mask in masks:
            mask.provenance["warnings"] = warnings
        return masks

    def _from_dicom_seg(self, scan: Scan) -> list[Mask]:
        from prosector.exports.dicom_seg import read_dicom_seg

        masks = read_dicom_seg(self.source, scan)
        for mask in masks:
            mask.label = mask.label or mask.name
            mask.name = safe_name(mask.name).lower()  # DICOM SEG labels are free text ("Liver")
        return masks


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mgz", ".mgh", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_dicom_seg(path: Path) -> bool:
    if path.name.lower().endswith(NIFTI_SUFFIXES + (".nrrd", ".nhdr", ".mgz", ".mgh")):
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:
        return False
    return str(getattr(ds, "SOPClassUID", "")) in SEG_SOP_CLASSES


def _read_label_volume(path: Path) -> tuple[np.ndarray, np.ndarray, dict[int, str] | None]:
    """Integer labels, their affine, and the label table in the file when there is one."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        from prosector.io.nifti import read_nifti_image
        from prosector.exports.nifti import read_label_table

        img, data = read_nifti_image(path)
        affine, table = img.affine, read_label_table(img)
    elif name.endswith((".mgz", ".mgh")):
        from prosector.io.mgh import load_mgh

        scan = load_mgh(path)
        data, affine, table = scan.data, scan.affine, None
    elif name.endswith((".nrrd", ".nhdr")):
        from prosector.io.itk import read_itk

        data, affine = read_itk(path)
        table = None
    else:
        raise InputError("unrecognised segmentation file type", path=path,
                         hint="Give a folder of NIfTI masks, a multilabel NIfTI/NRRD/MGZ or a DICOM SEG.")
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise InputError("holds non-integer values; a label map is expected", path=path)
        data = data.astype(np.int32)
    return data, np.asarray(affine, dtype=float), table


def _sidecar_map(path: Path) -> dict[int, str] | None:
    sidecar = path.with_name(_stem(path) + ".json")
    if not sidecar.is_file():
        return None
    try:
        return parse_class_map(sidecar)
    except InputError:
        return None
