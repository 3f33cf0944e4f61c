"""SAT model configurations: the widths of SAT-Nano and SAT-Pro, and the fixture's mini model.

Numbers come from the parity fixture (../shared/fixtures/sat_parity/config.json) and the paper.
A config is plain data: it round-trips through JSON so a checkpoint folder can carry its own.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

# Modality codes of the text tower's additive modality embedding (2025 checkpoints add microscopy).
MODALITY_CODES = {"ct": 0, "mri": 1, "us": 2, "pet": 3, "microscopy": 4}



def modality_for_query(modality: str) -> str:
    """Fold a scan's modality string into the text tower's vocabulary (SAT's substring rule)."""
    m = modality.lower()
    if any(s in m for s in ("t1", "t2", "mri", "mr", "flair", "dwi")):
        return "mri"
    if "ct" in m:
        return "ct"
    if "pet" in m:
        return "pet"
    return m


# SAT tiles at this size; the positional encoding is built for it (a 9x9x3 token grid).
PATCH_SIZE = (288, 288, 96)
# The U-Net reduces every axis by 32, so the visual tokens live on the /32 grid.
TOKEN_STRIDE = 32
# Average-pool kernels that bring encoder stages 0..4 to the /32 grid (stage 5 already is).
POOL_KERNELS = (32, 16, 8, 4, 2)


@dataclass(frozen=True)
class SatConfig:
    """Everything that shapes a SAT segmentation model (not the text tower)."""

    name: str = "nano"
    features_per_stage: tuple[int, ...] = (64, 64, 128, 256, 512, 768)
    n_conv_per_stage: tuple[int, ...] = (2, 2, 2, 2, 2, 2)
    n_conv_per_stage_decoder: tuple[int, ...] = (2, 2, 2, 2, 2)
    strides: tuple[int, ...] = (1, 2, 2, 2, 2, 2)
    input_channels: int = 3
    query_dim: int = 768
    nhead: int = 8
    dim_feedforward: int = 2048
    num_decoder_layers: int = 6
    projection_hidden: int = 768
    mask_embed_hidden: int = 256
    # Deep-supervision heads exist only in training; official files carry them (we can write them too).
    mid_mask_hidden: tuple[int, ...] = (256, 384, 512)
    mid_per_pixel: tuple[int, ...] = (64, 128, 256)
    image_size: tuple[int, int, int] = PATCH_SIZE
    deep_supervision_heads: bool = False

    @property
    def token_grid(self) -> tuple[int, int, int]:
        return tuple(s // TOKEN_STRIDE for s in self.image_size)  # type: ignore[return-value]

    @property
    def per_pixel_dim(self) -> int:
        return self.features_per_stage[0]

    def with_image_size(self, size) -> "SatConfig":
        size = tuple(int(s) for s in size)
        if len(size) != 3 or any(s <= 0 or s % TOKEN_STRIDE for s in size):
            raise ValueError(f"SAT patch size must be 3 positive multiples of {TOKEN_STRIDE}, got {size}")
        return replace(self, image_size=size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SatConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "SatConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


NANO = SatConfig()

PRO = SatConfig(
    name="pro",
    features_per_stage=(128, 128, 256, 512, 1024, 1536),
    n_conv_per_stage=(3, 3, 3, 3, 3, 3),
    n_conv_per_stage_decoder=(3, 3, 3, 3, 3),
    projection_hidden=1536,
    mask_embed_hidden=384,
    mid_mask_hidden=(384, 512, 512),
    mid_per_pixel=(128, 256, 512),
)

# The parity fixture's model: SAT-Nano's structure with every width divided by 8.
MINI = SatConfig(
    name="mini",
    features_per_stage=(8, 8, 16, 32, 64, 96),
    query_dim=96,
    dim_feedforward=256,
    projection_hidden=96,
    mask_embed_hidden=32,
    mid_mask_hidden=(32, 48, 64),
    mid_per_pixel=(8, 16, 32),
    image_size=(128, 96, 64),
)

CONFIGS = {c.name: c for c in (NANO, PRO, MINI)}


@dataclass(frozen=True)
class TextTowerConfig:
    """The text side: BioLORD-2023-C (MPNet-base) + projection + modality embedding."""

    hidden_size: int = 768
    query_dim: int = 768
    n_modalities: int = 4          # 5 for the 2025 (cvpr2025challenge) checkpoints
    max_tokens: int = 256          # SAT's tokenizer cap; longer labels are cut and end in [SEP]
    extra: dict = field(default_factory=dict)
