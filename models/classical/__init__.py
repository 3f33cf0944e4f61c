"""The `classical` engine: body, lungs, airway, bone, fat and muscle on CT without weights."""
from .engine import STRUCTURES, ClassicalEngine

__all__ = ["ClassicalEngine", "STRUCTURES"]
