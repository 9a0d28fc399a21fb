"""Segmentation models. Importing this package registers every model in ``dualseg.registry.MODELS``."""

from __future__ import annotations

from typing import Any

from torch import nn

from dualseg.models import baselines, danie, drfl, ds2f, efen  # noqa: F401  (registers every model)
from dualseg.models.base import SegmentationModel
from dualseg.registry import MODELS


def create_model(name: str, in_channels: int = 1, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Every model's ``forward(x)`` returns a dict of tensors whose ``"seg"`` entry holds the final segmentation
    logits of shape ``(N, num_classes, H, W)`` at the label resolution. ``num_classes=1`` means one sigmoid
    logit (binary); ``num_classes>=2`` means softmax over classes. Multi-output models add named entries.
    """
    return MODELS.build(name, in_channels=in_channels, num_classes=num_classes, **kwargs)


def list_models() -> list[str]:
    """Names of every registered model."""
    return MODELS.names()


__all__ = ["SegmentationModel", "create_model", "list_models"]
