"""dualseg: 2D medical image segmentation with dual-stream (segmentation + super-resolution) methods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from dualseg.registry import MODELS

__version__ = "0.1.0"


def create_model(name: str, in_channels: int = 1, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Every model's ``forward(x)`` returns a dict of tensors whose ``"seg"`` entry holds the final segmentation
    logits of shape ``(N, num_classes, H, W)`` at the label resolution. ``num_classes=1`` means one sigmoid
    logit (binary); ``num_classes>=2`` means softmax over classes. Multi-output models add named entries.
    """
    import dualseg.models  # noqa: F401  (registers the models)

    return MODELS.build(name, in_channels=in_channels, num_classes=num_classes, **kwargs)


def list_models() -> list[str]:
    """Names of every registered model."""
    import dualseg.models  # noqa: F401

    return MODELS.names()


def load_model(path: str | os.PathLike, device: str = "cpu", which: str = "best") -> nn.Module:
    """A trained model in eval mode from a package folder (``dualseg export --format package``), a run directory
    or a checkpoint; see :func:`dualseg.inference.package.load_inference_model` for its preprocessing settings."""
    from dualseg.inference.package import load_model as _load

    return _load(path, device, which)


def sample_data_path(name: str = "isbi2012") -> Path:
    """The folder of a dataset shipped inside the package (``images/``, ``masks/``, ``DATASET.md``): ``isbi2012``,
    the 30 labelled ISBI 2012 training pairs. Installed with the package, so ``dualseg demo`` and the tests run
    on real images without any download."""
    from dualseg.errors import DualsegError

    root = Path(__file__).resolve().parent / "sample_data"
    shipped = sorted(p.name for p in root.iterdir() if (p / "images").is_dir()) if root.is_dir() else []
    if name not in shipped:
        raise DualsegError(f"no embedded sample dataset '{name}'; shipped: {', '.join(shipped) or 'none'} "
                           "(full datasets: dualseg fetch-data --list)")
    return root / name


__all__ = ["create_model", "list_models", "__version__"]
__all__ += ["load_model", "sample_data_path"]
