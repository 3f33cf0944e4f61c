"""Shared test fixtures. Real scans live in ../shared/data relative to the repository root."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
TOTALSEG = DATA / "totalsegmentator"


def pytest_sessionstart(session: pytest.Session) -> None:
    # Tests rest on real anatomy; a missing data folder is a broken setup, not a reason to skip.
    if not DATA.is_dir():
        raise pytest.UsageError(f"real scans not found at {DATA}: the tests need ../shared/data beside the repository")


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def totalseg_dir() -> Path:
    return TOTALSEG
