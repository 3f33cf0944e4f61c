"""Writing results: NIfTI masks, multilabel, statistics, DICOM SEG, run reports."""
