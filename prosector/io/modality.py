"""Deciding and checking a scan's modality from what the file and the user say."""
from __future__ import annotations

import numpy as np

from prosector.scan import Scan

# Air in CT is about -1000 HU; a volume whose low tail reaches this is almost surely HU.
HU_AIR_BELOW = -500.0
# Dense bone and contrast stay well under this; far larger maxima mean raw detector units.
HU_PLAUSIBLE_MAX = 32767.0
HU_PAD_MIN = -4000.0


def looks_like_hu(data: np.ndarray) -> bool:
    """True when the intensity range matches Hounsfield units (air near -1000, tissue near 0)."""
    step = max(1, int(round((data.size / 2_000_000) ** (1 / 3))))  # a subsample is enough for percentiles
    sample = data[::step, ::step, ::step] if data.ndim == 3 else data
    low = float(np.percentile(sample, 1))
    # Scanners pad outside the field of view with -2048 or -3024; anything lower is not HU.
    return low <= HU_AIR_BELOW and float(np.min(sample)) >= HU_PAD_MIN and float(np.max(sample)) < HU_PLAUSIBLE_MAX


def check_modality(scan: Scan, requested: str | None) -> None:
    """Settle `scan.modality` and warn where the intensities contradict it (CT only)."""
    if requested:
        if scan.modality not in ("unknown", requested):
            scan.warnings.append(
                f"the file says modality {scan.modality.upper()} but {requested.upper()} was requested; using {requested.upper()}"
            )
        scan.modality = requested
    if scan.is_2d:
        return
    if scan.modality == "unknown" and looks_like_hu(scan.data):
        scan.modality = "ct"
        scan.provenance.notes.append("modality inferred as CT from Hounsfield-like intensities")
    if scan.modality == "unknown":
        scan.warnings.append("modality unknown (no DICOM tag, intensities are not Hounsfield units); pass --modality ct|mr|pet|xray|us")
    if scan.modality == "ct" and not looks_like_hu(scan.data):
        lo, hi = float(np.min(scan.data)), float(np.max(scan.data))
        scan.warnings.append(
            f"intensities {lo:g}..{hi:g} do not look like Hounsfield units for a CT "
            "(no air near -1000); is this really CT, or was the rescale slope/intercept lost?"
        )
