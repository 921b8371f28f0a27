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
