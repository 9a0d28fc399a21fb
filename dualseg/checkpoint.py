"""Checkpoints written atomically and loaded safely.

Writing is atomic (:mod:`dualseg.safety.atomic`): a crash leaves either the previous checkpoint or the new one,
never a torn file; a temporary file left by a killed process is removed on resume. Loading uses ``weights_only=True``: a
checkpoint holds tensors and plain Python values only, and a crafted pickle cannot run code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from dualseg.errors import DualsegError
from dualseg.safety.atomic import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


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
