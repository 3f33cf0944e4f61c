"""`prosector mcp`: Prosector's Python API as MCP tools (official `mcp` SDK), confined to allowed folders.

Every tool failure a caller can cause (bad path, unknown structure, wrong grid) is a ToolError: the
client sees one readable line with is_error set, and the server keeps serving.
"""
from __future__ import annotations

import hashlib
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from prosector.config import home
from prosector.errors import ProsectorError

from .paths import AllowedFolders

SERVER_NAME = "prosector"
INSTRUCTIONS_FILE = Path(__file__).with_name("mcp_instructions.md")

Modality = Literal["ct", "mr"]
ImagePath = Annotated[str, Field(description="path of the scan: NIfTI, NRRD, MGH/MGZ file, or a DICOM folder/zip")]
SegPath = Annotated[str | None, Field(description="an existing segmentation of this scan (TotalSegmentator "
                                                  "output folder, multilabel file or DICOM SEG); optional")]


def build_server(allowed: AllowedFolders | None = None) -> MCPServer:
    allowed = allowed or AllowedFolders()
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS_FILE.read_text(encoding="utf-8"))
    tools = ProsectorTools(allowed)

    def guarded(call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except ProsectorError as err:
            raise ToolError(err.user_message()) from None

    async def in_thread(call, ctx: Context | None = None, **kwargs):
        """Run blocking work off the event loop, relaying its progress as MCP progress notifications."""
        def progress(fraction: float, message: str = "") -> None:
            if ctx is None:
                return
            try:
                anyio.from_thread.run(partial(ctx.report_progress, float(fraction) * 100, 100.0,
                                              message=str(message) or None))
            except Exception:  # a client that went away must not fail the work itself
                pass

        return await anyio.to_thread.run_sync(partial(guarded, call, progress=progress, **kwargs))

    @server.tool(description="Resolve free text (e.g. 'L adrenal', 'both kidneys') to Prosector structure ids. "
                             "Call this first; use only the ids it returns.")
    def find_structures(query: Annotated[str, Field(min_length=1, description="anatomy in plain words")],
                        modality: Modality | None = None) -> dict[str, Any]:
        return guarded(tools.find_structures, query, modality)

    @server.tool(description="The vocabulary: every structure Prosector can segment on a modality.")
    def list_structures(modality: Modality = "ct",
                        scope: Annotated[Literal["main", "totalseg", "any"],
                                         Field(description="which engines count")] = "any") -> dict[str, Any]:
        return guarded(tools.list_structures, modality, scope)

    @server.tool(description="Segmentation engines on this machine: ready or not (with the fix), device, cost.")
    def engines() -> dict[str, Any]:
        return guarded(tools.engines)

    @server.tool(description="Segment structures named in plain words on a scan; writes NIfTI masks on the scan's "
                             "grid and returns their paths, volumes, mean intensities and warnings.")
    async def segment(image: ImagePath,
                      structures: Annotated[str, Field(min_length=1, description="e.g. 'left adrenal gland, liver'")],
                      ctx: Context,
                      segmentation: SegPath = None,
                      engine: Literal["auto", "precomputed", "classical", "totalseg", "sat", "medsam"] = "auto",
                      modality: Modality | None = None) -> dict[str, Any]:
        return await in_thread(tools.segment, ctx, image=image, structures=structures, segmentation=segmentation,
                               engine=engine, modality=modality)

    @server.tool(description="Measure a mask file (NIfTI on the scan's grid): volume, intensity, centroid, extent, "
                             "border contact.")
    def measure(image: ImagePath, mask: Annotated[str, Field(description="path of a binary mask NIfTI")],
                modality: Modality | None = None) -> dict[str, Any]:
        return guarded(tools.measure, image, mask, modality)

    @server.tool(description="Ask a question about a scan in plain words ('how big is the spleen?'); the answer's "
                             "numbers come from masks, with the evidence they rest on.")
    async def ask(image: ImagePath, question: Annotated[str, Field(min_length=1)], ctx: Context,
                  segmentation: SegPath = None) -> dict[str, Any]:
        return await in_thread(tools.ask, ctx, image=image, question=question, segmentation=segmentation)

    @server.tool(description="Draft report sentences for a scan (optionally one region, e.g. 'abdomen'); each "
                             "sentence lists the structures and numbers it rests on.")
    async def draft_report(image: ImagePath, ctx: Context, segmentation: SegPath = None,
                           region: str | None = None) -> dict[str, Any]:
        return await in_thread(tools.draft_report, ctx, image=image, segmentation=segmentation, region=region)

    return server


class ProsectorTools:
    """The tools' work, free of MCP: paths confined, results as plain JSON-able dicts."""

    def __init__(self, allowed: AllowedFolders):
        self.allowed = allowed
        self._sessions: dict[tuple[str, str | None], Any] = {}

    # -- vocabulary --------------------------------------------------------------------------------
    def find_structures(self, query: str, modality: str | None = None) -> dict:
        from prosector.knowledge import resolve

        return resolve(query, modality=modality).to_dict()

    def list_structures(self, modality: str = "ct", scope: str = "any") -> dict:
        from prosector.knowledge import load_tree

        tree = load_tree()
        rows = [{"id": c.id, "name": c.name, "synonyms": list(c.synonyms)[:5], "laterality": c.laterality,
                 "region": c.region, "engines": sorted(tree.engine_names(c.id, modality))}
                for c in tree if tree.covered(c.id, scope, modality)]
        return {"modality": modality, "scope": scope, "count": len(rows), "structures": rows}

    def engines(self) -> dict:
        from prosector.api import engine_table

        return {"engines": engine_table()}

    # -- work on scans -----------------------------------------------------------------------------
    def segment(self, image: str, structures: str, segmentation: str | None = None, engine: str = "auto",
                modality: str | None = None, progress=None) -> dict:
        from prosector.api import segment

        image_path = self.allowed.confine(image, "image")
        seg_path = self.allowed.confine(segmentation, "segmentation") if segmentation else None
        out_dir = self._output_dir(image_path, structures)
        result = segment(image_path, structures, out_dir, engine=engine, seg=seg_path, modality=modality,
                         formats=["nifti"], statistics=True, progress=progress)
        rows = []
        for mask, m in zip(result.masks, result.measurements):
            rows.append({"id": mask.name, "name": mask.label or mask.name, "engine": mask.engine,
                         "file": str(out_dir / f"{mask.name}.nii.gz"), **_numbers(m)})
        return {"image": str(image_path), "structures": rows, "output_dir": str(out_dir),
                "files": result.outputs, "warnings": result.warnings}

    def measure(self, image: str, mask: str, modality: str | None = None, progress=None) -> dict:
        import nibabel as nib
        import numpy as np

        from prosector.errors import InputError
        from prosector.geometry import align_to_grid
        from prosector.io import load_scan
        from prosector.mask import Mask
        from prosector.measure import measure

        image_path = self.allowed.confine(image, "image")
        mask_path = self.allowed.confine(mask, "mask")
        scan = load_scan(image_path, modality=modality, require_3d=True)
        try:
            img = nib.load(str(mask_path))
            data = np.asarray(img.dataobj)
        except Exception as err:  # nibabel raises many kinds for a file that is not NIfTI
            raise InputError(f"cannot read the mask as NIfTI ({type(err).__name__})", path=mask_path) from None
        on_grid = align_to_grid(data, img.affine, scan.grid, what="mask")
        name = mask_path.name.removesuffix(".gz").removesuffix(".nii")
        result = measure(Mask(name, on_grid > 0, "file"), scan)
        out = {"image": str(image_path), "mask": str(mask_path), **_numbers(result),
               "measurements": result.to_dict()}
        return out

    def ask(self, image: str, question: str, segmentation: str | None = None, progress=None) -> dict:
        from prosector.agent import Agent

        session = self._session(image, segmentation)
        reply = Agent(session).ask(question, progress=progress)
        if reply.error:
            from prosector.errors import InputError

            raise InputError(reply.error)
        return {"text": reply.text, "steps": list(reply.steps), "mask_ids": list(reply.mask_ids),
                "measurements": list(reply.measurements), "evidence": list(reply.evidence),
                "warnings": list(reply.warnings), "workspace": str(session.root)}

    def draft_report(self, image: str, segmentation: str | None = None, region: str | None = None,
                     progress=None) -> dict:
        from prosector.agent import Agent

        session = self._session(image, segmentation)
        report = Agent(session).report(region)
        return {**report.to_dict(), "workspace": str(session.root)}

    # -- helpers -------------------------------------------------------------------------------------
    def _session(self, image: str, segmentation: str | None):
        """One workspace per (scan, segmentation): a repeated question reuses its masks, even after a restart."""
        from prosector.agent import Session

        image_path = self.allowed.confine(image, "image")
        seg_path = self.allowed.confine(segmentation, "segmentation") if segmentation else None
        key = (str(image_path), str(seg_path) if seg_path else None)
        if key not in self._sessions:
            digest = hashlib.sha1("|".join(map(str, key)).encode()).hexdigest()[:16]
            session = Session.open(f"mcp-{digest}")
            session.load_scan(image_path, seg=seg_path)
            self._sessions[key] = session
        return self._sessions[key]

    def _output_dir(self, image: Path, structures: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        digest = hashlib.sha1(f"{image}|{structures}|{time.time_ns()}".encode()).hexdigest()[:8]
        return home() / "mcp" / f"{stamp}-{digest}"


def _numbers(m) -> dict:
    return {"volume_ml": m.volume_ml, "volume_mm3": m.volume_mm3, "intensity_mean": m.intensity_mean,
            "intensity_unit": m.intensity_unit, "voxel_count": m.voxel_count,
            "centroid_world_mm": m.centroid_world_mm, "touches_border": m.touches_border, "empty": m.empty}


def run_server(allow: list[str] | None, *, http: bool = False, host: str = "127.0.0.1", port: int = 8765) -> None:
    # PROSECTOR_HOME is always allowed: the server writes its outputs there and reads them back.
    roots = [*(allow or [Path.cwd()]), home()]
    server = build_server(AllowedFolders(roots))
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
