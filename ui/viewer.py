"""Server-side slice rendering: axial, coronal and sagittal views of a scan with mask overlays.

Display follows the radiological convention: the patient's left is on the viewer's right in axial
and coronal views, anterior is up in axial, superior is up in coronal and sagittal, and anterior is
on the viewer's left in sagittal. The scan is first put in RAS order (an exact, reversible
OrientationView), so the rules above are fixed array flips whatever the file's own axis order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from prosector.geometry import OrientationView
from prosector.mask import Mask
from prosector.scan import Scan

# (level, width) in HU: the presets radiologists reach for first.
WINDOWS: dict[str, tuple[float, float]] = {
    "soft tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
PLANES = ("axial", "coronal", "sagittal")

# Distinct, saturated colours (none grey) so an overlay is never mistaken for tissue.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128),
)

# Each plane's on-screen size: the longer side drawn at about this many pixels.
PANEL_PIXELS = 360
_MARKER_COLOUR = (255, 200, 0)


@dataclass
class Overlay:
    name: str
    label: str
    colour: tuple[int, int, int]
    data: np.ndarray               # bool, in the viewer's RAS order


@dataclass
class SliceViewer:
    """A scan in RAS order, its overlays, and how to turn them into pictures."""

    scan: Scan
    view: OrientationView = field(init=False)
    volume: np.ndarray = field(init=False)
    overlays: dict[str, Overlay] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.view = OrientationView.of(self.scan.grid, "RAS")
        data = self.scan.data if self.scan.data.ndim == 3 else self.scan.data[..., 0]
        self.volume = self.view.forward(np.asarray(data))

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.volume.shape[:3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.view.target.spacing

    def centre(self) -> tuple[int, int, int]:
        return tuple(n // 2 for n in self.shape)

    def ras_index_of_world(self, xyz) -> tuple[int, int, int]:
        """The RAS-ordered voxel nearest a world RAS+ mm point, clipped into the volume."""
        ijk = np.rint(self.view.target.voxel(np.asarray(xyz, dtype=float))).astype(int)
        return tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(ijk, self.shape))

    def ras_index_of_voxel(self, ijk) -> tuple[int, int, int]:
        """Where a voxel index of the scan's own array lies in the viewer's RAS array."""
        return self.ras_index_of_world(self.scan.grid.world(np.asarray(ijk, dtype=float)))

    # -- overlays ---------------------------------------------------------------------------------
    def set_mask(self, mask: Mask, colour: tuple[int, int, int] | None = None) -> Overlay:
        if tuple(mask.data.shape[:3]) != tuple(self.scan.data.shape[:3]):
            raise ValueError(f"mask {mask.name} is not on the scan's grid")
        if colour is None:
            existing = self.overlays.get(mask.name)
            colour = existing.colour if existing else PALETTE[len(self.overlays) % len(PALETTE)]
        overlay = Overlay(mask.name, mask.label or mask.name.replace("_", " "), colour,
                          self.view.forward(mask.data))
        self.overlays[mask.name] = overlay
        return overlay

    def structure_centre(self, name: str) -> tuple[int, int, int] | None:
        """The RAS voxel at the centre of mass of one overlay (None when absent or empty)."""
        overlay = self.overlays.get(name)
        if overlay is None or not overlay.data.any():
            return None
        ijk = np.argwhere(overlay.data).mean(axis=0)
        # Centre of mass may fall outside a curved structure; take its nearest voxel inside it.
        inside = np.argwhere(overlay.data)
        nearest = inside[np.argmin(((inside - ijk) ** 2).sum(axis=1))]
        return tuple(int(v) for v in nearest)

    # -- rendering --------------------------------------------------------------------------------
    def window(self, preset: str | None, level: float | None = None, width: float | None = None) -> tuple[float, float]:
        """(low, high) display range: a CT preset, a free level/width, or the MR/PET 1-99th percentile."""
        if level is not None and width is not None and width > 0:
            return level - width / 2, level + width / 2
        if preset in WINDOWS and self.scan.modality == "ct":
            lvl, wid = WINDOWS[preset]
            return lvl - wid / 2, lvl + wid / 2
        low, high = np.percentile(self.volume[:: 2, :: 2, :: 2], (1, 99))
        return float(low), float(max(high, low + 1e-6))

    def plane(self, plane: str, index: int, *, window: tuple[float, float], opacity: float = 0.5,
              highlight: set[str] | None = None) -> Image.Image:
        """One slice as an RGB picture in display orientation, at physical aspect, with markers."""
        if plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}")
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        index = int(np.clip(index, 0, self.shape[axis] - 1))
        grey = _to_display(np.take(self.volume, index, axis=axis), plane)
        low, high = window
        rgb = np.repeat((np.clip((grey - low) / (high - low), 0, 1) * 255)[..., None], 3, axis=2)
        for overlay in self.overlays.values():
            cut = _to_display(np.take(overlay.data, index, axis=axis), plane)
            if not cut.any():
                continue
            alpha = opacity if highlight is None or overlay.name in highlight else opacity * 0.25
            rgb[cut] = (1 - alpha) * rgb[cut] + alpha * np.asarray(overlay.colour, dtype=float)
        image = Image.fromarray(rgb.astype(np.uint8), "RGB")
        image = image.resize(self._panel_size(plane), Image.NEAREST)
        _draw_markers(image, plane, f"{plane} {index + 1}/{self.shape[axis]}")
        return image

    def render(self, point: tuple[int, int, int], *, preset: str | None = "soft tissue",
               level: float | None = None, width: float | None = None, opacity: float = 0.5,
               highlight: set[str] | None = None) -> Image.Image:
        """Axial, coronal and sagittal through `point` (RAS voxel indices), one millimetre scale for all.

        Coronal and sagittal stack beside the axial view when they are short (a slab), else all three
        stand side by side.
        """
        win = self.window(preset, level, width)
        i, j, k = point
        axial, coronal, sagittal = (self.plane("axial", k, window=win, opacity=opacity, highlight=highlight),
                                    self.plane("coronal", j, window=win, opacity=opacity, highlight=highlight),
                                    self.plane("sagittal", i, window=win, opacity=opacity, highlight=highlight))
        gap = 6
        if coronal.height + sagittal.height + gap <= axial.height * 1.2:
            right = max(coronal.width, sagittal.width)
            height = max(axial.height, coronal.height + sagittal.height + gap)
            sheet = Image.new("RGB", (axial.width + gap + right, height), (0, 0, 0))
            sheet.paste(axial, (0, 0))
            sheet.paste(coronal, (axial.width + gap, 0))
            sheet.paste(sagittal, (axial.width + gap, coronal.height + gap))
            return sheet
        panels = (axial, coronal, sagittal)
        height = max(p.height for p in panels)
        sheet = Image.new("RGB", (sum(p.width for p in panels) + gap * 2, height), (0, 0, 0))
        x = 0
        for panel in panels:
            sheet.paste(panel, (x, (height - panel.height) // 2))
            x += panel.width + gap
        return sheet

    def _panel_size(self, plane: str) -> tuple[int, int]:
        sx, sy, sz = self.spacing
        ni, nj, nk = self.shape
        width_mm, height_mm = {"axial": (ni * sx, nj * sy), "coronal": (ni * sx, nk * sz),
                               "sagittal": (nj * sy, nk * sz)}[plane]
        # One scale for every plane, so a structure keeps its size from view to view.
        scale = PANEL_PIXELS / max(ni * sx, nj * sy, nk * sz, 1e-6)
        return max(1, round(width_mm * scale)), max(1, round(height_mm * scale))


def _to_display(cut: np.ndarray, plane: str) -> np.ndarray:
    """A RAS slice -> rows top-to-bottom, columns left-to-right as a radiologist reads it."""
    # axial cut is (i: L->R, j: P->A); show rows A->P, columns R->L (patient's left on the right).
    # coronal cut is (i, k); rows S->I, columns R->L. sagittal cut is (j, k); rows S->I, columns A->P.
    return np.ascontiguousarray(cut.T[::-1, ::-1])


# Which patient direction lies at each edge: (top, bottom, left, right).
EDGE_LABELS = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)   # Pillow's bundled font: no system fonts, no network
    except TypeError:
        return ImageFont.load_default()


def _draw_markers(image: Image.Image, plane: str, caption: str) -> None:
    draw = ImageDraw.Draw(image)
    font = _font(14)
    top, bottom, left, right = EDGE_LABELS[plane]
    w, h = image.size
    draw.text((w / 2, 2), top, fill=_MARKER_COLOUR, font=font, anchor="mt")
    draw.text((w / 2, h - 2), bottom, fill=_MARKER_COLOUR, font=font, anchor="mb")
    draw.text((3, h / 2), left, fill=_MARKER_COLOUR, font=font, anchor="lm")
    draw.text((w - 3, h / 2), right, fill=_MARKER_COLOUR, font=font, anchor="rm")
    draw.text((3, h - 2), caption, fill=(200, 200, 200), font=_font(11), anchor="lb")


def legend_html(viewer: SliceViewer | None) -> str:
    """Colour swatches naming each overlay, for the page beside the picture."""
    if viewer is None or not viewer.overlays:
        return "<div class='prosector-legend'><em>No structures yet.</em></div>"
    items = "".join(
        f"<span style='display:inline-block;margin-right:12px'>"
        f"<span style='display:inline-block;width:12px;height:12px;background:rgb{o.colour};"
        f"vertical-align:middle;margin-right:4px'></span>{_escape(o.label)}</span>"
        for o in viewer.overlays.values())
    return f"<div class='prosector-legend'>{items}</div>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
