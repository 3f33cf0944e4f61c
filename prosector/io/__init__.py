"""Reading scans from disk: NIfTI, NRRD, MGH/MGZ, DICOM series (folder or zip), 2D images."""
from prosector.io.load import detect_format, load_scan

__all__ = ["detect_format", "load_scan"]
