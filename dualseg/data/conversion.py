"""The converters of ``dualseg fetch-data``: a download's own layout -> dualseg's ``images/`` + ``masks/`` folders.

Each known dataset (:mod:`dualseg.data.datasets`) registers one with :func:`converter`; a converter takes the
folders to search (the unpacked download and any ``--from`` folders), the output folder and whether to show
progress, and returns notes for ``DATASET.md``. The helpers below are the steps the converters share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from dualseg.data.io import IMAGE_EXTENSIONS
from dualseg.data.names import NameTable
from dualseg.errors import DualsegError

Converter = Callable[[Sequence[Path], Path, bool], list[str]]
CONVERTERS: NameTable[Converter] = NameTable("converter")


def converter(name: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter ``name`` (a catalogue entry's ``converter``)."""

    def decorator(convert: Converter) -> Converter:
        return CONVERTERS.register(name, convert)

    return decorator


def find_file(roots: Sequence[Path], name: str) -> Path | None:
    """The first file called ``name`` below the first root that holds one (sorted paths), or ``None``."""
    for root in roots:
        hits = sorted(p for p in root.rglob(name) if p.is_file())
        if hits:
            return hits[0]
    return None


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def binary_0_255(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    """255 where ``mask >= threshold``, else 0 (uint8)."""
    return np.where(mask >= threshold, 255, 0).astype(np.uint8)


def displayed_gray(path: Path) -> np.ndarray:
    """Grey levels as displayed (palette GIFs decoded through their palette, unlike ``read_mask``)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except OSError as e:
        raise DualsegError(f"cannot read image {path}: {e}") from e


def gray(arr: np.ndarray) -> np.ndarray:
    """The channel mean of an ``(H, W, C)`` array; a 2D array unchanged."""
    return arr.mean(axis=-1) if arr.ndim == 3 else arr


def ensure_folder(path: Path) -> Path:
    """``path``, created with its parents when missing."""
    path.mkdir(parents=True, exist_ok=True)
    return path
