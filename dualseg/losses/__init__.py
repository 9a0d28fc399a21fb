"""Losses: registered segmentation (``ce``, ``bce``, ``dice``) and image (``l1``, ``mse``) losses, and their
weighted composition."""

from __future__ import annotations

from dualseg.losses import regression, segmentation  # noqa: F401  (registers the losses)
from dualseg.losses.composite import TERM_KEYS, CompositeLoss, LossTerm, build_loss
from dualseg.losses.segmentation import BinaryCrossEntropyLoss, CrossEntropyLoss, DiceLoss

__all__ = [
    "TERM_KEYS",
    "BinaryCrossEntropyLoss",
    "CompositeLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "LossTerm",
    "build_loss",
]
