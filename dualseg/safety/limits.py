"""Limits on untrusted input sizes, so a file cannot exhaust the machine: the pixel count an image may declare, and
out-of-memory errors turned into one line that says which size to lower."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dualseg.errors import DualsegError

PIXELS_ENV = "DUALSEG_MAX_IMAGE_PIXELS"
BYTES_PER_PIXEL = 256  # what one pixel may cost on its way through reading, normalising, the model and writing
MIN_PIXELS = 64_000_000  # never below this: 3504x2336 fundus images and large tiles must pass on small machines


def max_image_pixels() -> int:
    """The largest ``W x H`` an image may declare: ``$DUALSEG_MAX_IMAGE_PIXELS``, or by default the machine's
    memory / 256 bytes (at least 64 M pixels)."""
    setting = os.environ.get(PIXELS_ENV)
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            raise DualsegError(f"{PIXELS_ENV} must be an integer number of pixels, got {setting[:40]!r}") from None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 16 * 2**30
    return max(MIN_PIXELS, memory // BYTES_PER_PIXEL)


def check_pixels(path: str | Path, width: int, height: int) -> None:
    """Refuse an image whose header declares more pixels than :func:`max_image_pixels` (before it is decoded)."""
    limit = max_image_pixels()
    if width * height > limit:
        raise DualsegError(f"{path} declares {width}x{height} pixels, more than the limit of {limit:,} (a corrupt "
                           f"header or a decompression bomb?); if it is real, raise {PIXELS_ENV} or tile the image")


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@contextlib.contextmanager
def out_of_memory_hint(what: str, lower: str) -> Iterator[None]:
    """Turn an out-of-memory error inside the block into ``out of memory <what>; lower <lower>``."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not _is_out_of_memory(e):
            raise
        raise DualsegError(f"out of memory {what}; lower {lower}") from None
