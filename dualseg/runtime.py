"""The process's runtime: seeding and random state, the device, and mixed precision (bf16 autocast where the
hardware computes it natively, fp16 + GradScaler on older GPUs). Foundation layer: imports only torch and errors."""

from __future__ import annotations

import contextlib
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


def resolve_device(device: str | torch.device, option: str = "--device", fix: str = "--device cpu") -> torch.device:
    """'auto' (the GPU when there is one), 'cpu', 'cuda' or 'cuda:N' -> ``torch.device``; ``option`` names where the
    user set it and ``fix`` what to set instead, for the one-line error when CUDA is asked for but absent."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DualsegError(f"unknown device {device!r} ({option}); use 'auto', 'cpu' or 'cuda'") from e
    if dev.type not in ("cpu", "cuda"):
        raise DualsegError(f"unsupported device {device!r} ({option}); use 'auto', 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DualsegError(f"{option} is '{device}' but no CUDA GPU is available (torch {torch.__version__}); "
                           f"use {fix}")
    return dev


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


PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # train.precision and predict --precision


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 autocast is 2-3x faster than fp32 (measured: docs)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` ('auto', 'fp32', 'bf16', 'fp16'); None means full fp32."""
    if setting == "fp32":
        return None
    if setting == "fp16":
        if device.type != "cuda":
            raise DualsegError("train.precision 'fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on CPU")
        return torch.float16
    if setting == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def precision_name(dtype: object) -> str:
    """'fp32' for no autocast (None, or its string as stored in result records), else 'bf16' / 'fp16'."""
    return {"None": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), str(dtype))


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
