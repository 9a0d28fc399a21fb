"""Shared fixtures: where the real datasets are.

The full datasets come from ``$DUALSEG_DATA`` when it is set (and only from there), else from ``../shared/data``
beside the repository. ISBI 2012 falls back to the sample shipped in the package (the same 30 labelled pairs), so
the ISBI tests train, evaluate and predict on real images on any machine; a test needing another dataset that is
not there is skipped, with the dataset named in the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dualseg

REPO = Path(__file__).resolve().parent.parent
EMBEDDED = "isbi2012"


def find_data_root() -> Path | None:
    """``$DUALSEG_DATA`` if set, else ``../shared/data`` beside the repository; None when that folder is missing."""
    setting = os.environ.get("DUALSEG_DATA")
    root = Path(setting) if setting else REPO.parent / "shared" / "data"
    return root if root.is_dir() else None


class DataRoot(type(Path())):
    """``data_root / "NAME/..."``: the full dataset NAME, the embedded sample for ISBI 2012, or a skip."""

    def __truediv__(self, key: str | os.PathLike) -> Path:
        name, *rest = Path(key).parts
        full = Path(self) / name
        if full.is_dir():
            return full.joinpath(*rest)
        if name == EMBEDDED:
            return dualseg.sample_data_path(EMBEDDED).joinpath(*rest)
        pytest.skip(f"needs the full '{name}' dataset, which is not embedded: set DUALSEG_DATA or place it in "
                    f"../shared/data (dualseg fetch-data {name} --dest DIR)")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return DataRoot(find_data_root() or REPO / "no-shared-data")


@pytest.fixture(scope="session")
def isbi_root(data_root: Path) -> Path:
    """The ISBI 2012 folder: the full one when present, else the embedded sample."""
    return data_root / EMBEDDED


@pytest.fixture(autouse=True, scope="session")
def _quiet_hub() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
