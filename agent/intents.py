"""What a request asks for, by the ordered rules in agent/data/intents.yaml (anatomy is the resolver's job)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
REGIONS = {  # words -> report region (None: the whole scan)
    "abdomen": "abdomen", "abdominal": "abdomen", "belly": "abdomen",
    "chest": "chest", "thorax": "chest", "thoracic": "chest", "lung": "chest", "lungs": "chest",
    "pelvis": "pelvis", "pelvic": "pelvis",
    "spine": "spine", "spinal": "spine", "vertebral": "spine", "skeleton": "spine",
}


@functools.lru_cache(maxsize=1)
def _rules() -> list[tuple[str, list[re.Pattern]]]:
    items = yaml.safe_load((DATA_DIR / "intents.yaml").read_text())
    return [(item["intent"], [re.compile(p, re.I) for p in item["patterns"]]) for item in items]


def classify(text: str) -> str | None:
    """The first intent whose rule matches, or None."""
    for intent, patterns in _rules():
        if any(p.search(text) for p in patterns):
            return intent
    return None


def region_of(text: str) -> str | None:
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in REGIONS:
            return REGIONS[word]
    return None


@functools.lru_cache(maxsize=1)
def _language_markers() -> dict[str, frozenset]:
    data = yaml.safe_load((DATA_DIR / "languages.yaml").read_text())
    return {lang: frozenset(w.lower() for w in words) for lang, words in data.items()}


def foreign_language(text: str) -> str | None:
    """The language a request seems written in, when it is not English (two marker words or more)."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    best, hits = None, 1
    for lang, markers in _language_markers().items():
        n = sum(w in markers for w in words)
        if n > hits:
            best, hits = lang, n
    return best
