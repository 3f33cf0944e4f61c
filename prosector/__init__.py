"""Prosector: ask for anatomy in plain words and get it back, precisely, on your own scan."""
from prosector.errors import InputError, ProsectorError, RuntimeFailure

__version__ = "0.1.0"

__all__ = ["__version__", "InputError", "ProsectorError", "RuntimeFailure"]
