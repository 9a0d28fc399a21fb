"""dualseg: 2D medical image segmentation with dual-stream (segmentation + super-resolution) methods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dualseg.version import __version__

if TYPE_CHECKING:
    from torch import nn


def create_model(name: str, in_channels: int = 1, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; see :func:`dualseg.models.create_model` (``forward(x)["seg"]`` = logits)."""
    from dualseg.models import create_model as _create

    return _create(name, in_channels=in_channels, num_classes=num_classes, **kwargs)


def list_models() -> list[str]:
    """Names of every registered model."""
    from dualseg.models import list_models as _list

    return _list()


def load_model(path: str | os.PathLike, device: str = "cpu", which: str = "best") -> nn.Module:
    """A trained model in eval mode from a package folder (``dualseg export --format package``), a run directory
    or a checkpoint; see :func:`dualseg.inference.loading.load_inference_model` for its preprocessing settings."""
    from dualseg.inference.loading import load_model as _load

    return _load(path, device, which)


def sample_data_path(name: str = "isbi2012") -> Path:
    """The folder of a dataset shipped inside the package; see :func:`dualseg.data.sample.sample_data_path`."""
    from dualseg.data.sample import sample_data_path as _path

    return _path(name)


__all__ = ["create_model", "list_models", "__version__"]
__all__ += ["load_model", "sample_data_path"]
