"""LLM-facing text kept as data (`prosector.prompts`)."""
