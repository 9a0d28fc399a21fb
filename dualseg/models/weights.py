"""Reading a local pretrained-weights file (the offline ``pretrained_path`` of the timm/torchvision encoders)."""

from __future__ import annotations

import os

import torch
from timm.models import load_state_dict as timm_load_state_dict

from dualseg.errors import DualsegError


def read_weights_file(path: str | os.PathLike, owner: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``.pth``/``.pt``/``.bin`` or ``.safetensors``, read by timm, which unwraps
    ``state_dict``/``model`` and ``module.`` prefixes); ``owner`` names the model in the error messages."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DualsegError(f"{owner}: pretrained_path '{path}' does not exist or is not a file")
    try:
        state = timm_load_state_dict(path)
    except Exception as e:  # pickle / safetensors / zip errors all mean "not a weights file we can read"
        raise DualsegError(f"{owner}: cannot read weights from '{path}': {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DualsegError(f"{owner}: '{path}' does not hold a state dict of tensors")
    return state
