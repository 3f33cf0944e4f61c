"""All-or-nothing output folders: write into a temporary folder, move into place at the end."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from prosector.errors import InputError


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(out_dir: Path) -> None:
    """Fail before any work when the output folder cannot be created or written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", path=out_dir)
    base = _nearest_existing(out_dir)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise InputError("output folder cannot be written (no permission)", path=out_dir,
                         hint="Choose another -o folder.")


@contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success its files move into `out_dir`, on failure nothing remains."""
    out_dir = Path(out_dir)
    check_writable(out_dir)
    base = out_dir if out_dir.is_dir() else _nearest_existing(out_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".prosector-", dir=base))
    except OSError as err:
        raise InputError(f"output folder cannot be written ({err.strerror})", path=out_dir) from None
    try:
        yield staging
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
