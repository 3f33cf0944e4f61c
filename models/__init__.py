"""Segmentation engines (`prosector.models`)."""
