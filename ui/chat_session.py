"""One browser tab's state, free of Gradio: the agent session, the viewer, the last report, downloads.

Every method raises ProsectorError for what the user must hear; the app turns it into a chat message.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Callable

from prosector.errors import InputError

from .paths import AllowedFolders
from .viewer import SliceViewer

SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mgh", ".mgz", ".zip", ".dcm")
SEG_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mgz", ".zip", ".dcm")
DEFAULT_MAX_UPLOAD_MB = 2048


class Busy(InputError):
    """A second request arrived while this tab's first one is still running."""


class ChatSession:
    def __init__(self, allowed: AllowedFolders, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, llm: str | None = None):
        self.allowed = allowed
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.llm = llm
        self.session = None            # prosector.agent.Session, opened on the first load
        self.agent = None
        self.viewer: SliceViewer | None = None
        self.point: tuple[int, int, int] = (0, 0, 0)
        self.highlight: set[str] | None = None
        self.report = None
        self.scan_label = ""
        self._lock = threading.Lock()
        self._scratch = Path(tempfile.mkdtemp(prefix="prosector-chat-"))
        self._downloads: Path | None = None

    # -- loading ---------------------------------------------------------------------------------
    def load(self, scan_path: str | None = None, scan_upload: str | None = None, seg_path: str | None = None,
             seg_upload: str | None = None, series_uid: str | None = None) -> str:
        """Load a scan (upload or allowed server path) and an optional segmentation; returns a status line."""
        from prosector.agent import Agent, Session

        with self._exclusive():
            scan = self._input(scan_upload, scan_path, "scan", SCAN_SUFFIXES)
            if scan is None:
                raise InputError("choose a scan: upload a file or give a path on the server")
            seg = self._input(seg_upload, seg_path, "segmentation", SEG_SUFFIXES)
            if seg is not None and seg.suffix.lower() == ".zip":
                seg = self._unzip(seg)
            if self.session is None:
                self.session = Session.open()
            # A DICOM zip or folder with several series: the loader takes the one named, else the largest,
            # and says which in the scan's notes (shown in the status line).
            self.session.load_scan(scan, seg=seg, series_uid=(series_uid or "").strip() or None)
            self.agent = Agent(self.session, llm=self.llm)
            self.viewer = SliceViewer(self.session.scan)
            self.point = self.viewer.centre()
            self.highlight = None
            self.report = None
            for mask_id, mask in self.session.masks.items():   # a reloaded scan keeps its earlier masks
                self.viewer.set_mask(mask)
            return self._describe(scan, seg)

    def _describe(self, scan: Path, seg: Path | None) -> str:
        s = self.session.scan
        shape = "x".join(str(n) for n in s.shape[:3])
        spacing = "x".join(f"{v:.3g}" for v in s.spacing)
        self.scan_label = scan.name
        lines = [f"Loaded **{scan.name}**: {s.modality.upper()}, {shape} voxels at {spacing} mm, "
                 f"{s.grid.orientation}."]
        if s.provenance.series_description or s.provenance.series_uid:
            lines.append(f"DICOM series: {s.provenance.series_description or ''} ({s.provenance.series_uid}).")
        if seg is not None:
            lines.append(f"Existing segmentation: {seg.name} (used by the precomputed engine).")
        lines += [f"Note: {n}" for n in s.provenance.notes]
        if any("series" in n and "largest" in n for n in s.provenance.notes):
            lines.append("To open another series, put its UID in the *DICOM series UID* box and load again.")
        lines += [f"Warning: {w}" for w in s.warnings]
        return "\n\n".join(lines)

    def _input(self, upload: str | None, path: str | None, what: str, suffixes: tuple[str, ...]) -> Path | None:
        if upload:
            chosen = Path(upload)
            if not chosen.is_file():
                raise InputError(f"the uploaded {what} was not received; upload it again")
            size = chosen.stat().st_size
            if size > self.max_upload_bytes:
                raise InputError(f"the uploaded {what} is {size / 2**20:.0f} MB, over this server's limit of "
                                 f"{self.max_upload_bytes / 2**20:.0f} MB (start it with --max-upload-mb to change)")
            if not chosen.name.lower().endswith(suffixes):
                raise InputError(f"{chosen.name} is not a {what} this app reads "
                                 f"({', '.join(suffixes)}; a DICOM series as a .zip)")
            return chosen
        if path and path.strip():
            return self.allowed.confine(path, what)
        return None

    def _unzip(self, archive: Path) -> Path:
        """A zipped TotalSegmentator output folder: extracted here, refusing entries that climb out."""
        target = Path(tempfile.mkdtemp(prefix="seg-", dir=self._scratch))
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.infolist():
                    if member.is_dir():
                        continue
                    name = Path(member.filename)
                    if name.is_absolute() or ".." in name.parts:
                        raise InputError(f"the segmentation zip holds an unsafe entry {member.filename!r}")
                    if name.name.lower().endswith((".nii", ".nii.gz", ".json", ".dcm")):
                        out = target / name.name
                        out.write_bytes(zf.read(member))
        except zipfile.BadZipFile:
            raise InputError("the segmentation upload is not a readable zip file", path=archive.name) from None
        found = list(target.iterdir())
        if not found:
            raise InputError("the segmentation zip holds no NIfTI or DICOM files", path=archive.name)
        # A zip of one multilabel file is that file; otherwise a folder of binary masks.
        images = [p for p in found if not p.name.endswith(".json")]
        return images[0] if len(images) == 1 else target

    # -- asking ----------------------------------------------------------------------------------
    def ask(self, text: str, progress: Callable[[float, str], None] | None = None,
            on_step: Callable[[str], None] | None = None):
        if self.agent is None:
            raise InputError("load a scan first (upload one, or give a path on the server), then ask")
        with self._exclusive():
            reply = self.agent.ask(text, progress=progress, on_step=on_step)
            self._show(reply.mask_ids)
            if reply.report is not None:
                self.report = reply.report
            return reply

    def draft_report(self, region: str | None = None):
        if self.agent is None:
            raise InputError("load a scan first, then draft a report")
        with self._exclusive():
            self.report = self.agent.report((region or "").strip() or None)
            self._show(list(getattr(self.report, "mask_ids", []) or
                            [s for sentence in self.report.sentences for s in sentence.get("structures", [])]))
            return self.report

    def _show(self, mask_ids: list[str]) -> None:
        """Overlay the masks a reply rests on and jump to the first one that has voxels."""
        for mask_id in mask_ids:
            if mask_id in self.session.masks:
                self.viewer.set_mask(self.session.masks[mask_id])
        self.highlight = None
        for mask_id in mask_ids:
            if self.jump_to(mask_id):
                break

    def jump_to(self, name: str) -> bool:
        centre = self.viewer.structure_centre(name) if self.viewer else None
        if centre is None:
            return False
        self.point = centre
        return True

    def focus_sentence(self, index: int) -> str:
        """Highlight the structures one report sentence rests on; returns the sentence."""
        if self.report is None or not 0 <= index < len(self.report.sentences):
            return ""
        sentence = self.report.sentences[index]
        structures = [s for s in sentence.get("structures", []) if self.viewer and s in self.viewer.overlays]
        self.highlight = set(structures) or None
        for name in structures:
            if self.jump_to(name):
                break
        return sentence.get("text", "")

    # -- tables and files ------------------------------------------------------------------------
    def structure_rows(self) -> list[list]:
        if self.session is None:
            return []
        rows = []
        for mask_id, mask in self.session.masks.items():
            m = self.session.measurement(mask_id)
            mean = None if m.intensity_mean is None else round(m.intensity_mean, 1)
            border = ("touches " + ", ".join(m.border_axes) + ": volume is a lower bound") if m.touches_border else ""
            if m.empty:
                border = "not in the field of view"
            rows.append([mask.label or mask_id, round(m.volume_ml, 2), mean, m.intensity_unit, mask.engine, border])
        return rows

    def sentence_rows(self) -> list[list]:
        if self.report is None:
            return []
        return [[s.get("text", ""), ", ".join(s.get("structures", []))] for s in self.report.sentences]

    def downloads(self) -> list[str]:
        """Per-structure NIfTI, multilabel NIfTI, DICOM SEG (DICOM inputs), statistics.json, report, log."""
        if self.session is None:
            return []
        if self._downloads is not None:
            # Gradio has copied the previous set into its own cache already; only the newest is kept here.
            shutil.rmtree(self._downloads, ignore_errors=True)
        out = self._downloads = Path(tempfile.mkdtemp(prefix="downloads-", dir=self._scratch))
        files: list[Path] = []
        if self.session.masks:
            formats = ["nifti", "multilabel", "statistics"]
            if self.session.scan.provenance.format == "dicom":
                formats.append("dicom-seg")
            files += [p for p in self.session.export(None, formats, out / "masks")
                      if p.name != "measurements.json"]
        if self.report is not None:
            report_path = out / "report.md"
            report_path.write_text(self.report.markdown, encoding="utf-8")
            files.append(report_path)
        if self.session.log_path.is_file():
            log_copy = out / "session_log.jsonl"
            log_copy.write_bytes(self.session.log_path.read_bytes())
            files.append(log_copy)
        return [str(p) for p in files]

    def render(self, preset: str, level: float | None, width: float | None, opacity: float):
        if self.viewer is None:
            return None
        free = preset == "free"
        return self.viewer.render(self.point, preset=None if free else preset, level=level if free else None,
                                  width=width if free else None, opacity=opacity, highlight=self.highlight)

    # -- one request at a time ---------------------------------------------------------------------
    def _exclusive(self):
        session = self

        class _Guard:
            def __enter__(self_inner):
                if not session._lock.acquire(blocking=False):
                    raise Busy("still working on your previous request in this tab; ask again when it has answered")
                return self_inner

            def __exit__(self_inner, *exc):
                session._lock.release()
                return False

        return _Guard()
