"""Checkpoints written atomically and loaded safely.

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the target, so a crash
leaves either the previous checkpoint or the new one, never a torn file. Loading uses ``weights_only=True``: a
checkpoint holds tensors and plain Python values only, and a crafted pickle cannot run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dualseg.errors import DualsegError


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise DualsegError(
            f"cannot write {path}: {e.strerror or e} (is the output directory writable and not full?)"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise DualsegError(
            f"cannot load checkpoint {path}: {str(e).splitlines()[0]} (corrupt, or not a dualseg checkpoint; "
            "objects that would need code to load are refused)"
        ) from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DualsegError(f"{path} is not a dualseg checkpoint (no model weights and config inside)")
    return state
