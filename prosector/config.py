"""Where Prosector keeps its things (PROSECTOR_HOME) and the user's settings (config.json there)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from prosector.errors import InputError


def home() -> Path:
    """PROSECTOR_HOME, default ~/.prosector: weights, caches, workspaces, config."""
    return Path(os.environ.get("PROSECTOR_HOME") or Path.home() / ".prosector").expanduser()


def load_config() -> dict:
    """Settings from PROSECTOR_HOME/config.json (absent file: defaults)."""
    path = home() / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"settings file is not valid JSON ({err})", path=path) from None
    if not isinstance(config, dict):
        raise InputError("settings file must hold a JSON object", path=path)
    return config


def engine_preference() -> list[str] | None:
    """Routing order from PROSECTOR_ENGINES (comma list) or config "engine_preference"."""
    text = os.environ.get("PROSECTOR_ENGINES")
    if text:
        return [n.strip() for n in text.split(",") if n.strip()]
    value = load_config().get("engine_preference")
    return list(value) if value else None
