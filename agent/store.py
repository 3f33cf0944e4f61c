"""Atomic workspace files: written to a temporary name and renamed, so a crash never leaves half a file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from prosector.mask import Mask


def _atomic_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value) -> None:
    text = json.dumps(value, indent=1, default=str).encode()
    _atomic_bytes(Path(path), lambda h: h.write(text))


def read_json(path: Path):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def append_jsonl(path: Path, record: dict) -> None:
    """One line per record; a single write() of a whole line, so lines never interleave half-way."""
    line = (json.dumps(record, default=str) + "\n").encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def write_mask(path: Path, mask: Mask) -> None:
    meta = json.dumps({"name": mask.name, "engine": mask.engine, "label": mask.label,
                       "shape": list(mask.data.shape), "provenance": mask.provenance}, default=str)
    _atomic_bytes(Path(path), lambda h: np.savez_compressed(h, bits=np.packbits(mask.data.ravel()),
                                                             meta=np.array(meta)))


def read_mask(path: Path, shape: tuple[int, ...] | None = None) -> Mask | None:
    """A stored mask, or None when the file is unreadable or on another grid shape."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            stored_shape = tuple(meta["shape"])
            if shape and tuple(shape) != stored_shape:
                return None
            bits = np.unpackbits(stored["bits"], count=int(np.prod(stored_shape)))
    except (OSError, ValueError, KeyError):
        return None
    return Mask(meta["name"], bits.reshape(stored_shape).astype(bool), meta["engine"],
                {**meta.get("provenance", {}), "from_workspace": True}, label=meta.get("label"))
