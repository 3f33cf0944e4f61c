"""Masks cached per scan and engine run, so a request an earlier run already covers is instant."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from prosector.mask import Mask
from prosector.scan import Scan


def scan_fingerprint(scan: Scan) -> str:
    """Content hash of voxels, grid and modality: the same scan under another path shares a cache."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(scan.data).tobytes())
    digest.update(np.asarray(scan.affine, dtype=np.float64).round(6).tobytes())
    digest.update(f"{scan.data.shape}|{scan.data.dtype}|{scan.modality}".encode())
    return digest.hexdigest()[:24]


class MaskCache:
    """On disk: <root>/<scan>/<run key>/<structure>.npz (bit-packed mask + provenance)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, scan: Scan, run_key: str) -> Path:
        safe = hashlib.sha256(run_key.encode()).hexdigest()[:16]
        return self.root / scan_fingerprint(scan) / safe

    def get(self, scan: Scan, run_key: str, structures: list[str]) -> list[Mask] | None:
        """All requested masks from one cached run, or None when any is missing."""
        folder = self._dir(scan, run_key)
        paths = [folder / f"{s}.npz" for s in structures]
        if not all(p.is_file() for p in paths):
            return None
        masks = []
        for structure, path in zip(structures, paths):
            with np.load(path, allow_pickle=False) as stored:
                bits = np.unpackbits(stored["bits"], count=int(np.prod(scan.data.shape[:3])))
                meta = json.loads(str(stored["meta"]))
            masks.append(Mask(structure, bits.reshape(scan.data.shape[:3]).astype(bool), meta["engine"],
                              {**meta["provenance"], "cached": True}, label=meta.get("label")))
        return masks

    def put(self, scan: Scan, run_key: str, masks: list[Mask]) -> None:
        folder = self._dir(scan, run_key)
        folder.mkdir(parents=True, exist_ok=True)
        for mask in masks:
            meta = json.dumps({"engine": mask.engine, "label": mask.label, "run_key": run_key,
                               "provenance": _jsonable(mask.provenance)})
            # Write then rename: a crash never leaves a half-written mask that looks valid.
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
            os.close(fd)
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, bits=np.packbits(mask.data.ravel()), meta=np.array(meta))
            os.replace(tmp, folder / f"{mask.name}.npz")


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
