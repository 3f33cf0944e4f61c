"""A session: one scan, its masks and measurements, and the chat log, kept on disk as a workspace.

Layout under PROSECTOR_HOME/workspaces/<id>/:
    state.json                  the scan's source (path, segmentation, modality) and its fingerprint
    masks/<mask id>.npz         bit-packed voxels + engine, label and provenance
    measurements.json           mask id -> prosector.measure.Measurements
    log.jsonl                   tool calls, tool results and chat turns, one JSON object a line
A restarted process re-reads the scan file and finds its masks and numbers here: nothing is recomputed.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from prosector.config import home
from prosector.errors import InputError
from prosector.mask import Mask
from prosector.measure import Measurements, measure
from prosector.scan import Scan

from .store import append_jsonl, read_json, read_mask, write_json, write_mask

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def workspaces_root() -> Path:
    return home() / "workspaces"


class Session:
    """What is loaded and computed; everything it learns is written to its workspace at once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.id = self.root.name
        self._state: dict = read_json(self.root / "state.json") or {"id": self.id, "created": time.time()}
        self._scan: Scan | None = None
        self._masks: dict[str, Mask] | None = None
        self._measurements: dict[str, Measurements] | None = None
        self._router = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, workspace_id: str | None = None) -> "Session":
        """The workspace `workspace_id` (created when new); a fresh id when None."""
        if workspace_id is None:
            workspace_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        if not _ID.match(workspace_id):
            raise InputError(f"workspace id {workspace_id!r} must be letters, digits, '.', '_' or '-' (at most 64)")
        root = workspaces_root() / workspace_id
        try:
            (root / "masks").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create the workspace ({err.strerror})", path=root) from None
        session = cls(root)
        if not (root / "state.json").is_file():
            session._save_state()
        return session

    @property
    def log_path(self) -> Path:
        return self.root / "log.jsonl"

    # -- the scan ----------------------------------------------------------------------------
    def load_scan(self, path, seg=None, class_map=None, modality=None, series_uid=None) -> str:
        """Load a scan (and an existing segmentation to answer from); returns its scan id.

        Loading the same scan again keeps its masks; another scan starts the workspace afresh.
        """
        from prosector.io import load_scan
        from prosector.models.cache import scan_fingerprint

        scan = load_scan(path, modality=modality, series_uid=series_uid, require_3d=True)
        if seg is not None and not Path(seg).exists():
            raise InputError("no such segmentation file or folder", path=seg)
        fingerprint = scan_fingerprint(scan)
        source = {"path": str(Path(path).resolve()), "seg": str(Path(seg).resolve()) if seg else None,
                  "class_map": class_map if isinstance(class_map, (dict, type(None))) else str(class_map),
                  "modality": modality, "series_uid": series_uid}
        previous = self._state.get("scan") or {}
        if previous.get("fingerprint") != fingerprint or previous.get("seg") != source["seg"]:
            self._forget_masks()
        self._state["scan"] = {**source, "fingerprint": fingerprint, "modality_found": scan.modality,
                               "shape": list(scan.shape[:3]), "loaded": time.time()}
        self._scan = scan
        self._router = None
        self._save_state()
        self.log("load_scan", {"path": source["path"], "seg": source["seg"], "scan_id": fingerprint})
        return fingerprint

    @property
    def scan_id(self) -> str | None:
        return (self._state.get("scan") or {}).get("fingerprint")

    @property
    def scan(self) -> Scan | None:
        """The current scan; after a restart it is read again from its file (and checked unchanged)."""
        if self._scan is None and self._state.get("scan"):
            self._scan = self._reload_scan(self._state["scan"])
        return self._scan

    def require_scan(self) -> Scan:
        scan = self.scan
        if scan is None:
            raise InputError("no scan is loaded in this session: load one first (prosector ask IMAGE ...)")
        return scan

    def _reload_scan(self, source: dict) -> Scan:
        from prosector.io import load_scan
        from prosector.models.cache import scan_fingerprint

        scan = load_scan(source["path"], modality=source.get("modality"), series_uid=source.get("series_uid"),
                         require_3d=True)
        if scan_fingerprint(scan) != source["fingerprint"]:
            # The file changed under us: stored masks describe other voxels, so they go.
            self._forget_masks()
            source["fingerprint"] = scan_fingerprint(scan)
            self._save_state()
        return scan

    @property
    def seg(self) -> str | None:
        return (self._state.get("scan") or {}).get("seg")

    # -- masks and measurements ----------------------------------------------------------------
    @property
    def masks(self) -> dict[str, Mask]:
        if self._masks is None:
            self._masks = {}
            for path in sorted((self.root / "masks").glob("*.npz")):
                shape = tuple((self._state.get("scan") or {}).get("shape") or ())
                mask = read_mask(path, shape)
                if mask is not None:
                    self._masks[path.stem] = mask
        return self._masks

    @property
    def measurements(self) -> dict[str, Measurements]:
        if self._measurements is None:
            stored = read_json(self.root / "measurements.json") or {}
            self._measurements = {k: Measurements(**v) for k, v in stored.items()}
        return self._measurements

    def add_masks(self, masks: list[Mask]) -> list[str]:
        """Keep masks (named by structure id) in the workspace; returns their mask ids."""
        ids = []
        for mask in masks:
            mask_id = mask.name
            write_mask(self.root / "masks" / f"{mask_id}.npz", mask)
            self.masks[mask_id] = mask
            ids.append(mask_id)
        return ids

    def measurement(self, mask_id: str) -> Measurements:
        """Measurements of one mask: computed once by prosector.measure, then read from the workspace."""
        if mask_id not in self.measurements:
            if mask_id not in self.masks:
                raise InputError(f"no mask {mask_id!r} in this session")
            self.measurements[mask_id] = measure(self.masks[mask_id], self.require_scan())
            write_json(self.root / "measurements.json", {k: v.to_dict() for k, v in self.measurements.items()})
        return self.measurements[mask_id]

    def ensure_masks(self, concept_ids: list[str], engine: str | None = None,
                     progress: Callable[[float, str], None] | None = None) -> tuple[dict[str, list[str]], list[str]]:
        """Mask ids per concept (a group gives the parts an engine names), segmenting only what is missing.

        Returns ({concept: mask ids}, step lines saying what ran or that the masks were cached).
        """
        from prosector.knowledge import load_tree
        from prosector.models.base import SegmentOptions

        scan = self.require_scan()
        tree = load_tree()
        known: dict[str, list[str]] = self._state.setdefault("concept_masks", {})
        out: dict[str, list[str]] = {}
        wanted = []
        for concept in dict.fromkeys(concept_ids):
            ids = known.get(concept) or ([concept] if concept in self.masks else None)
            if ids and all(i in self.masks for i in ids):
                out[concept] = list(ids)
            else:
                wanted.append(concept)
        steps: list[str] = []
        if wanted:
            router = self.router()

            def parts(concept_id: str) -> tuple[str, ...]:
                found = tree.find(concept_id)
                return found.parts if found else ()

            plan = router.plan_concepts(scan, wanted, parts, force=engine)
            if plan.unroutable:
                from prosector.segmenting import unroutable_message

                raise InputError(unroutable_message(plan, tree))
            for choice in plan.choices:
                out.setdefault(choice.concept or choice.structure, []).append(choice.structure)
            # Parts another request already segmented need no new run.
            plan.choices = [c for c in plan.choices if c.structure not in self.masks]
            if plan.choices:
                for engine_name, structures in plan.groups().items():
                    steps.append(f"engine: {engine_name} ({', '.join(structures)})")
                masks, logs = router.run(scan, plan, SegmentOptions(progress=progress))
                for mask in masks:
                    concept = tree.find(mask.name)
                    if concept and not mask.label:
                        mask.label = concept.name
                self.add_masks(masks)
                self.log("segment", {"structures": [c.structure for c in plan.choices],
                                     "runs": [vars(log) for log in logs]})
            known.update({c: out[c] for c in wanted})
            self._save_state()
        if not steps:
            steps.append("masks: cached in this session")
        return {c: out[c] for c in dict.fromkeys(concept_ids)}, steps

    def union_mask(self, concept_id: str, mask_ids: list[str]) -> str:
        """One mask for a group (left lung = its lobes): the voxel union of its parts' masks."""
        if mask_ids == [concept_id]:
            return concept_id
        if concept_id not in self.masks:
            from prosector.knowledge import load_tree

            data = np.zeros(self.require_scan().shape[:3], dtype=bool)
            for i in mask_ids:
                data |= self.masks[i].data
            found = load_tree().find(concept_id)
            engines = sorted({self.masks[i].engine for i in mask_ids})
            self.add_masks([Mask(concept_id, data, "+".join(engines), {"union_of": list(mask_ids)},
                                 label=found.name if found else None)])
        return concept_id

    def router(self):
        if self._router is None:
            from prosector.segmenting import build_router

            source = self._state.get("scan") or {}
            self._router = build_router(seg=source.get("seg"), class_map=source.get("class_map"))
        return self._router

    def segmentable(self) -> set[str] | None:
        """Structure ids the user's own segmentation holds (None when none was given)."""
        if not self.seg:
            return None
        return set(self.router().engines["precomputed"].vocabulary(self.require_scan().modality))

    # -- log and export ------------------------------------------------------------------------
    def log(self, kind: str, data: dict) -> None:
        append_jsonl(self.log_path, {"time": round(time.time(), 3), "kind": kind, **data})

    def history(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a crash: skip it, keep the rest
                continue
        return out

    def export(self, structures: list[str] | None, formats: list[str], out_dir) -> list[Path]:
        """Write masks (all, or these mask ids / structure words) as nifti, multilabel, dicom-seg, statistics."""
        from prosector.api import parse_formats
        from prosector.exports import nifti, stats
        from prosector.exports.report import scan_summary
        from prosector.exports.staging import check_writable, staged_output

        scan = self.require_scan()
        ids = self.resolve_mask_ids(structures) if structures else list(self.masks)
        if not ids:
            raise InputError("nothing to export: no masks in this session yet")
        wanted = [f for f in formats if f != "statistics"]
        chosen = parse_formats(wanted, scan.provenance.format == "dicom") if wanted else []
        if "dicom-seg" in chosen and scan.provenance.format != "dicom":
            raise InputError("DICOM SEG output needs a DICOM input series", path=scan.provenance.path)
        out_dir = Path(out_dir)
        check_writable(out_dir)
        masks = [self.masks[i] for i in ids]
        written: list[Path] = []
        with staged_output(out_dir) as staging:
            if "nifti" in chosen:
                written += [nifti.save_mask(m, scan, staging / f"{m.name}.nii.gz") for m in masks]
            if "multilabel" in chosen:
                path, sidecar, _ = nifti.save_multilabel(masks, scan, staging / "segmentation.nii.gz")
                written += [path, sidecar]
            if "dicom-seg" in chosen:
                from prosector.api import snomed_codes
                from prosector.exports.dicom_seg import write_dicom_seg

                write_dicom_seg(scan, masks, staging / "segmentation.dcm", codes=snomed_codes())
                written.append(staging / "segmentation.dcm")
            if "statistics" in formats:
                measured = [self.measurement(i) for i in ids]
                written.append(stats.write_statistics(measured, staging / "statistics.json"))
                written.append(stats.write_measurements(measured, staging / "measurements.json",
                                                        scan_info=scan_summary(scan)))
        paths = [out_dir / p.name for p in written]
        self.log("export", {"structures": ids, "formats": list(formats), "files": [str(p) for p in paths]})
        return paths

    def resolve_mask_ids(self, structures: list[str]) -> list[str]:
        """Mask ids for mask ids or plain words; words go through the anatomy tree first."""
        ids: list[str] = []
        for item in structures:
            if item in self.masks:
                ids.append(item)
                continue
            from prosector.segmenting import resolve_request

            resolution = resolve_request(item, self.require_scan().modality)
            found, _ = self.ensure_masks(resolution.ids)
            ids += [i for group in found.values() for i in group]
        return list(dict.fromkeys(ids))

    def summary(self) -> dict:
        """What is loaded and computed (the `session` tool's answer)."""
        source = self._state.get("scan") or {}
        return {
            "workspace": self.id,
            "scan": {k: source.get(k) for k in ("path", "seg", "modality_found", "shape", "fingerprint")}
            if source else None,
            "masks": {i: {"engine": m.engine, "label": m.label, "empty": i in self.measurements
                          and self.measurements[i].empty} for i, m in self.masks.items()},
            "measured": sorted(self.measurements),
        }

    # -- persistence ---------------------------------------------------------------------------
    def _forget_masks(self) -> None:
        for path in (self.root / "masks").glob("*.npz"):
            path.unlink()
        (self.root / "measurements.json").unlink(missing_ok=True)
        self._masks, self._measurements = {}, {}

    def _save_state(self) -> None:
        write_json(self.root / "state.json", self._state)

