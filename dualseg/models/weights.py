"""Reading a local pretrained-weights file (the offline ``pretrained_path`` of the timm/torchvision encoders)."""

from __future__ import annotations

import os

import torch
from timm.models import adapt_input_conv
from timm.models import load_state_dict as timm_load_state_dict
from torch import nn

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


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor], owner: str, source: str, expected: str,
                 hint: str, first_conv: str | None = None) -> None:
    """Load ``state`` into ``module`` only if it holds exactly the module's keys with the module's shapes; the
    ``first_conv`` weight (key) is first adapted to the module's input channels as timm does. The one-line errors
    name ``owner``, ``source``, what was ``expected`` and the ``hint``."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise DualsegError(f"{owner}: weights from {source} do not match {expected}: {len(missing)} missing key(s) "
                           f"{missing[:5]}, {len(unexpected)} unexpected key(s) {unexpected[:5]}; {hint}")
    if first_conv is not None:
        w, want = state[first_conv], own[first_conv].shape[1]
        if w.ndim == 4 and w.shape[1] != want:
            state = {**state, first_conv: adapt_input_conv(want, w, base_chans=w.shape[1])}
    wrong = [f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
             if state[k].shape != v.shape]
    if wrong:
        raise DualsegError(f"{owner}: weights from {source} have wrong shapes: {'; '.join(wrong[:3])}")
    module.load_state_dict(state, strict=True)
