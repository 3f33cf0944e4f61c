"""Where SAT's files live: PROSECTOR_HOME/sat/<variant>/ or explicit paths, and what is missing.

Layout written by `prosector weights install sat-nano|sat-pro`:
    $PROSECTOR_HOME/sat/nano/SAT_Nano.pth          segmentation model (official file)
    $PROSECTOR_HOME/sat/nano/text_encoder.pth      its text encoder (official file)
    $PROSECTOR_HOME/sat/pro/SAT_Pro.pth, text_encoder.pth
    $PROSECTOR_HOME/sat/biolord/                   BioLORD-2023-C tokenizer + config (shared)
    $PROSECTOR_HOME/sat/cache/                     text embeddings keyed by checkpoint hash

Files kept elsewhere are named by PROSECTOR_SAT_MODEL, PROSECTOR_SAT_TEXT_ENCODER and
PROSECTOR_SAT_TOKENIZER (or by the engine's explicit arguments, which win).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VARIANTS = {"nano": "SAT_Nano.pth", "pro": "SAT_Pro.pth"}
TEXT_ENCODER_FILE = "text_encoder.pth"


def prosector_home() -> Path:
    return Path(os.environ.get("PROSECTOR_HOME") or Path.home() / ".prosector").expanduser()


def sat_home() -> Path:
    return prosector_home() / "sat"


def install_command(variant: str) -> str:
    return f"prosector weights install sat-{variant}"


@dataclass(frozen=True)
class SatFiles:
    variant: str          # nano | pro | custom (explicit paths)
    model: Path
    text_encoder: Path
    tokenizer_dir: Path

    def missing(self) -> list[str]:
        out = [str(p) for p in (self.model, self.text_encoder) if not p.is_file()]
        if not (self.tokenizer_dir / "vocab.txt").is_file():
            out.append(str(self.tokenizer_dir))
        return out

    @property
    def cache_dir(self) -> Path:
        return sat_home() / "cache"


def locate(variant: str = "nano", model=None, text_encoder=None, tokenizer_dir=None) -> SatFiles:
    """Explicit paths win, then PROSECTOR_SAT_* variables, then the standard place under PROSECTOR_HOME."""
    model = model or os.environ.get("PROSECTOR_SAT_MODEL") or None
    text_encoder = text_encoder or os.environ.get("PROSECTOR_SAT_TEXT_ENCODER") or None
    tokenizer_dir = tokenizer_dir or os.environ.get("PROSECTOR_SAT_TOKENIZER") or None
    if variant not in VARIANTS:
        from prosector.errors import InputError

        raise InputError(f"unknown SAT variant '{variant}' (choose {' or '.join(VARIANTS)})")
    folder = sat_home() / variant
    explicit = model is not None
    return SatFiles(
        variant="custom" if explicit else variant,
        model=Path(model) if model else folder / VARIANTS[variant],
        text_encoder=Path(text_encoder) if text_encoder else folder / TEXT_ENCODER_FILE,
        tokenizer_dir=Path(tokenizer_dir) if tokenizer_dir else sat_home() / "biolord",
    )
