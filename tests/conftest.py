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


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Every test run gets its own PROSECTOR_HOME and no TotalSegmentator setup of the machine's:
    results never depend on caches or weights a previous run or the developer left behind."""
    import os

    saved = {k: os.environ.get(k) for k in ("PROSECTOR_HOME", "TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH", "PROSECTOR_LLM")}
    home = tmp_path_factory.mktemp("prosector_home")
    os.environ["PROSECTOR_HOME"] = str(home)
    for key in ("TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH", "PROSECTOR_LLM"):
        os.environ.pop(key, None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
