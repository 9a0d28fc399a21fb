"""Atomic writes: a temporary file in the target's folder, flushed and ``fsync``ed, then renamed over the target
(and the folder synced, so the rename is durable too). A process killed at any moment leaves the old file or the new
one, never a torn one. New files get the mode the user's umask gives (``mkstemp`` alone would make them 0600)."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from dualseg.errors import DualsegError

TEMP_SUFFIX = ".tmp"
PAUSE_ENV = "DUALSEG_TEST_PAUSE_BEFORE_RENAME"  # test hook: seconds to sleep with the new file written, not renamed


@functools.cache
def file_mode() -> int:
    """0666 less the process's umask: the mode ``open()`` would give a new file (read once: reading the umask
    means setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (the directory entry reaches the disk too); not possible on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed over ``path``.

    The target is first claimed in the active output folder (:func:`dualseg.safety.outputs.claim`), which refuses
    to replace a file dualseg did not write there. An ``OSError`` (disk full, permission denied) becomes one line.
    """
    from dualseg.safety.outputs import claim

    path = Path(path)
    claim(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made: the system's error, with its path
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        if os.environ.get(PAUSE_ENV):  # lets the kill/resume test kill a run while a file is being written
            time.sleep(float(os.environ[PAUSE_ENV]))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        raise DualsegError(
            f"cannot write {path}: {e.strerror or e} (is the output directory writable and not full?)"
        ) from e
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills the open temporary file."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        write(f)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files that a killed process left in ``folder`` mid-write; the targets are untouched."""
    stale = sorted(Path(folder).glob(f".*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
