"""The engine interface: what every segmentation engine declares and does."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from prosector.mask import Mask
from prosector.scan import Scan


@dataclass
class Readiness:
    """Whether an engine can run now; if not, why and the command that fixes it."""

    ready: bool
    reason: str = ""
    fix: str = ""


@dataclass
class SegmentOptions:
    device: str = "auto"          # auto | cpu | cuda
    fast: bool = False
    progress: Callable[[float, str], None] | None = None  # fraction done, message
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """A segmentation engine. Masks it returns lie on the input scan's own grid."""

    name: str = ""
    cost: str = "low"  # rough: low (seconds on CPU) | medium | high (minutes, GPU preferred)

    @abstractmethod
    def vocabulary(self, modality: str) -> set[str]:
        """Structure ids (concept ids) this engine can segment on this modality."""

    @abstractmethod
    def readiness(self) -> Readiness:
        """Whether the engine's weights and dependencies are present."""

    def device(self, requested: str = "auto") -> str:
        return "cpu"

    def cache_key(self) -> str | None:
        """What identifies this engine's results (name, weights, version); None: never cache."""
        return self.name

    @abstractmethod
    def segment(self, scan: Scan, structures: list[str], options: SegmentOptions | None = None) -> list[Mask]:
        """One mask per requested structure id, on `scan`'s grid (empty if not in view)."""
