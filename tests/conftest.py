"""Shared fixtures: where the real datasets are (``$DUALSEG_DATA`` or ``../shared/data`` beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def find_data_root() -> Path | None:
    candidates = [os.environ.get("DUALSEG_DATA"), REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for c in candidates:
        if c and (Path(c) / "isbi2012").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("real datasets not found: set DUALSEG_DATA or place them in ../shared/data")
    return root


@pytest.fixture(autouse=True, scope="session")
def _quiet_hub() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
