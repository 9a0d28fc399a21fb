"""Checkpoints written atomically and loaded safely.

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the target (and the folder
synced, so the rename is durable too), so a crash leaves either the previous checkpoint or the new one, never a torn
file; a temporary file left by a killed process is removed on resume. Loading uses ``weights_only=True``: a
checkpoint holds tensors and plain Python values only, and a crafted pickle cannot run code.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from dualseg.errors import DualsegError

TEMP_SUFFIX = ".tmp"
PAUSE_ENV = "DUALSEG_TEST_PAUSE_BEFORE_RENAME"  # test hook: seconds to sleep with the new file written, not renamed


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


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.environ.get(PAUSE_ENV):  # lets the kill/resume test kill a run while a checkpoint is being written
            time.sleep(float(os.environ[PAUSE_ENV]))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        raise DualsegError(
            f"cannot write {path}: {e.strerror or e} (is the output directory writable and not full?)"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete temporary files that a killed process left in ``folder`` mid-write; the targets are untouched."""
    stale = sorted(Path(folder).glob(f".*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing, corrupt or unsafe file raises a clear error."""
    path = Path(path)
    if not path.is_file():
        raise DualsegError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # the safe unpickler's notes on pickle protocols are not the user's concern
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise DualsegError(
            f"cannot load checkpoint {path}: {str(e).splitlines()[0]} (corrupt, or not a dualseg checkpoint; "
            "objects that would need code to load are refused)"
        ) from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DualsegError(f"{path} is not a dualseg checkpoint (no model weights and config inside)")
    return state
