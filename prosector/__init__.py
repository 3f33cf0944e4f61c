"""Prosector: ask for anatomy in plain words and get it back, precisely, on your own scan."""
from prosector.errors import InputError, ProsectorError, RuntimeFailure

__version__ = "0.1.0"

__all__ = ["__version__", "InputError", "Prosector", "ProsectorError", "RuntimeFailure"]


def __getattr__(name: str):
    # Lazy: `import prosector` stays light for the CLI; the facade pulls in the agent and engines.
    if name == "Prosector":
        from prosector.facade import Prosector

        return Prosector
    raise AttributeError(f"module 'prosector' has no attribute {name!r}")
