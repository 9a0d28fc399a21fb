"""Losses: registered segmentation (``ce``, ``bce``, ``dice``), image (``l1``, ``mse``) and DS2F proxy (``ssim``,
``rmi``, ``gdice``) losses, and their weighted composition."""

from __future__ import annotations

from dualseg.losses import proxy, regression, segmentation  # noqa: F401  (registers the losses)
from dualseg.losses.composite import TERM_KEYS, CompositeLoss, LossTerm, build_loss
from dualseg.losses.proxy import GeneralizedDiceLoss, RMILoss, SSIMLoss
from dualseg.losses.segmentation import BinaryCrossEntropyLoss, CrossEntropyLoss, DiceLoss

__all__ = [
    "TERM_KEYS",
    "BinaryCrossEntropyLoss",
    "CompositeLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "GeneralizedDiceLoss",
    "LossTerm",
    "RMILoss",
    "SSIMLoss",
    "build_loss",
]
