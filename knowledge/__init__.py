"""The anatomy knowledge tree and free-text resolution (`prosector.knowledge`)."""
