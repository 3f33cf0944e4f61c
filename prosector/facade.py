"""`from prosector import Prosector`: the few calls a Python user needs, returning typed results.

    p = Prosector()
    seg = p.segment("ct.nii.gz", "left adrenal gland")
    seg["adrenal_gland_left"].volume_ml, seg["adrenal_gland_left"].nifti()   # a nibabel image
    p.ask("ct.nii.gz", "is the spleen enlarged?", seg="totalseg_out/").text
    p.report("ct.nii.gz", region="abdomen", seg="totalseg_out/").sentences

Everything is a thin layer over `prosector.api` and `prosector.agent`, which the CLI, the chat and
the MCP server call too: the same words give the same masks and numbers whichever face asks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import nibabel as nib
import numpy as np

from prosector.mask import Mask
from prosector.measure import Measurements
from prosector.scan import Scan


@dataclass
class Structure:
    """One segmented structure: its voxels on the scan's grid, the affine, and its measurements."""

    id: str
    name: str
    engine: str
    data: np.ndarray               # bool, the scan's own array shape
    affine: np.ndarray             # voxel -> world RAS+ mm, the scan's
    measurements: Measurements
    provenance: dict = field(default_factory=dict)

    @property
    def volume_ml(self) -> float:
        return self.measurements.volume_ml

    @property
    def volume_mm3(self) -> float:
        return self.measurements.volume_mm3

    @property
    def mean_intensity(self) -> float | None:
        return self.measurements.intensity_mean

    @property
    def touches_border(self) -> bool:
        return self.measurements.touches_border

    def nifti(self) -> nib.Nifti1Image:
        """The mask as a uint8 NIfTI image on the scan's grid (save it with `nibabel.save`)."""
        return nib.Nifti1Image(self.data.astype(np.uint8), self.affine)


@dataclass
class Segmentation:
    """What `Prosector.segment` returns: the structures in request order, files if written, warnings."""

    scan: Scan
    structures: list[Structure]
    resolved: list[dict]           # how the words were understood (ids, names, match kind)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, structure_id: str) -> Structure:
        for s in self.structures:
            if s.id == structure_id:
                return s
        raise KeyError(f"{structure_id!r} is not among {[s.id for s in self.structures]}")

    def __iter__(self) -> Iterator[Structure]:
        return iter(self.structures)

    def __len__(self) -> int:
        return len(self.structures)


@dataclass
class Answer:
    """What `Prosector.ask` returns: the answer, the numbers it states and the structures they rest on."""

    text: str
    structures: list[Structure]
    measurements: list[dict]
    evidence: list[dict]           # {"sentence", "structures", "numbers"}
    steps: list[str]
    warnings: list[str]
    error: str | None = None


@dataclass
class Report:
    """What `Prosector.report` returns: Markdown and sentences, each with its structures and numbers."""

    markdown: str
    sentences: list[dict]
    structures: list[Structure]
    warnings: list[str]

    def to_dict(self) -> dict:
        return {"markdown": self.markdown, "sentences": self.sentences,
                "structures": [s.id for s in self.structures], "warnings": self.warnings}


class Prosector:
    """One object for scripts and notebooks. Workspaces (masks reused across calls) live in PROSECTOR_HOME."""

    def __init__(self, *, engine: str | None = None, device: str = "auto", fast: bool = False):
        self.engine = engine
        self.device = device
        self.fast = fast

    def find(self, text: str, modality: str | None = None) -> dict:
        """How Prosector understands `text`: structure ids, names, match kind; or why it cannot."""
        from prosector.knowledge import resolve

        return resolve(text, modality=modality).to_dict()

    def segment(self, image: str | Path, structures: str, *, seg: str | Path | None = None,
                out_dir: str | Path | None = None, modality: str | None = None,
                progress: Callable[[float, str], None] | None = None) -> Segmentation:
        """Segment structures named in plain words; masks on the scan's own grid, measured.

        `seg` is an existing segmentation of this scan (TotalSegmentator folder, multilabel file,
        DICOM SEG) to take masks from. `out_dir` also writes NIfTI masks and statistics.json.
        """
        from prosector.api import segment

        result = segment(image, structures, out_dir, engine=self.engine, seg=seg, device=self.device,
                         fast=self.fast, modality=modality, statistics=out_dir is not None, progress=progress)
        items = [_structure(m, result.scan, meas) for m, meas in zip(result.masks, result.measurements)]
        return Segmentation(result.scan, items, result.structures, list(result.outputs), list(result.warnings))

    def ask(self, image: str | Path, question: str, *, seg: str | Path | None = None,
            modality: str | None = None, progress: Callable[[float, str], None] | None = None) -> Answer:
        """A question in plain words, answered from masks and measurements (the offline planner unless
        PROSECTOR_LLM is set). A question that cannot be answered comes back with `error` set."""
        from prosector.agent import Agent

        session = self._session(image, seg, modality)
        reply = Agent(session).ask(question, progress=progress)
        return Answer(reply.text, self._structures(session, reply.mask_ids), list(reply.measurements),
                      list(reply.evidence), list(reply.steps), list(reply.warnings), reply.error)

    def report(self, image: str | Path, *, region: str | None = None, seg: str | Path | None = None,
               modality: str | None = None) -> Report:
        """Draft findings for the scan (or one region), each sentence citing its structures and numbers."""
        from prosector.agent import Agent

        session = self._session(image, seg, modality)
        drafted = Agent(session).report(region)
        ids = list(dict.fromkeys(getattr(drafted, "mask_ids", None) or
                                 [s for sentence in drafted.sentences for s in sentence.get("structures", [])]))
        return Report(drafted.markdown, list(drafted.sentences), self._structures(session, ids),
                      list(getattr(drafted, "warnings", []) or []))

    # -- helpers -----------------------------------------------------------------------------------
    def _session(self, image, seg, modality):
        """A workspace per (scan, segmentation): asking twice about one scan segments once."""
        from prosector.agent import Session

        key = f"{Path(image).resolve()}|{Path(seg).resolve() if seg else ''}|{modality or ''}"
        session = Session.open("api-" + hashlib.sha1(key.encode()).hexdigest()[:16])
        session.load_scan(image, seg=seg, modality=modality)
        return session

    @staticmethod
    def _structures(session, mask_ids: list[str]) -> list[Structure]:
        scan = session.scan
        out = []
        for mask_id in mask_ids:
            if mask_id in session.masks:
                out.append(_structure(session.masks[mask_id], scan, session.measurement(mask_id)))
        return out


def _structure(mask: Mask, scan: Scan, measurements: Measurements) -> Structure:
    return Structure(mask.name, mask.label or mask.name.replace("_", " "), mask.engine, mask.data,
                     np.array(scan.affine, dtype=float), measurements, dict(mask.provenance))
