"""The datasets shipped inside the package (``dualseg/sample_data/<name>/``: images, masks, DATASET.md)."""

from __future__ import annotations

from pathlib import Path

from dualseg.errors import DualsegError

SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "sample_data"


def sample_data_path(name: str = "isbi2012") -> Path:
    """The folder of a dataset shipped inside the package (``images/``, ``masks/``, ``DATASET.md``): ``isbi2012``,
    the 30 labelled ISBI 2012 training pairs. Installed with the package, so ``dualseg demo`` and the tests run
    on real images without any download."""
    shipped = sorted(p.name for p in SAMPLE_ROOT.iterdir() if (p / "images").is_dir()) if SAMPLE_ROOT.is_dir() else []
    if name not in shipped:
        raise DualsegError(f"no embedded sample dataset '{name}'; shipped: {', '.join(shipped) or 'none'} "
                           "(full datasets: dualseg fetch-data --list)")
    return SAMPLE_ROOT / name
