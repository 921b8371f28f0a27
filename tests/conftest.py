"""Shared fixtures: where ../shared lives (absent on users' machines)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TS_EXAMPLE = SHARED / "data" / "totalsegmentator_example"


@pytest.fixture
def ts_example() -> Path:
    """Folder of the real TotalSegmentator example CT (Apache-2.0); skip when absent."""
    if not TS_EXAMPLE.is_dir():
        pytest.skip(f"shared data not available at {TS_EXAMPLE} (only in the project's CI)")
    return TS_EXAMPLE


@pytest.fixture(autouse=True, scope="session")
def _kernel_cache_in_tmp(tmp_path_factory):
    """Kernel cache in a session temporary folder: tests never write to the user's ~/.cache."""
    import os

    old = os.environ.get("THERADOSE_CACHE_DIR")
    os.environ["THERADOSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("theradose-cache"))
    yield
    if old is None:
        os.environ.pop("THERADOSE_CACHE_DIR", None)
    else:
        os.environ["THERADOSE_CACHE_DIR"] = old
