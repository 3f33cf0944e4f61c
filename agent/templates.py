"""Phrasing kept as data: `key: text` lines in prompts/*.txt, filled with measured numbers."""
from __future__ import annotations

import functools
from pathlib import Path

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"


def prompts_dir() -> Path:
    """prompts/ in a source checkout; the installed prosector.prompts package otherwise."""
    if PROMPTS.is_dir():
        return PROMPTS
    import prosector.prompts

    return Path(prosector.prompts.__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def templates(name: str) -> dict[str, str]:
    """`key: text` lines of prompts/<name>.txt (comments start with #)."""
    out: dict[str, str] = {}
    for line in (prompts_dir() / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, text = line.partition(":")
        out[key.strip()] = text.strip()
    return out


@functools.lru_cache(maxsize=None)
def prompt_text(name: str) -> str:
    """A whole prompt file (system prompt, a tool's description)."""
    return (prompts_dir() / name).read_text(encoding="utf-8").strip()


def fill(file: str, key: str, /, **values) -> str:
    return templates(file)[key].format(**values)
