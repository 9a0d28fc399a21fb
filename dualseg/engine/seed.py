"""Seeding and device choice."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from dualseg.errors import DualsegError


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` also ask for deterministic kernels.

    On CPU this makes runs repeat exactly. On CUDA, cuDNN is set deterministic, cuBLAS gets a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``), and the ops with no deterministic CUDA kernel (e.g. the backward pass of bilinear
    upsampling and adaptive average pooling) warn instead of failing (``warn_only``): docs/reliability.md lists
    them. ``deterministic=False`` switches all of this off again (it is process-wide state).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS reads this when it creates its handle (the first matmul on a GPU), so it is set before any CUDA
        # work; without it deterministic cuBLAS matmuls raise or warn. An explicit setting of the user's is kept.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DualsegError("train.device is 'cuda' but no CUDA GPU is available; use --set train.device=cpu (or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from, as checkpoint-safe values (tensors, lists, ints)."""
    version, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(keys), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(state: dict[str, Any] | torch.Tensor) -> None:
    """Restore :func:`rng_state` (or a bare torch CPU state, as older checkpoints hold)."""
    if torch.is_tensor(state):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, keys_np, *rest = state["numpy"]
    np.random.set_state((name, keys_np.numpy().astype(np.uint32), *rest))
