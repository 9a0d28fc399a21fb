"""Seeding and device choice."""

from __future__ import annotations

import random

import numpy as np
import torch

from dualseg.errors import DualsegError


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` also ask for deterministic kernels.

    On CPU this makes runs repeat exactly. On CUDA, cuDNN is set deterministic and non-deterministic ops warn
    instead of failing (``warn_only``): a few (e.g. some interpolation backward passes) have no deterministic
    version.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DualsegError("train.device is 'cuda' but no CUDA GPU is available; use --set train.device=cpu (or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
