"""Losses: registered segmentation (``ce``, ``bce``, ``dice``), image (``l1``, ``mse``) and DS2F proxy (``ssim``,
``rmi``, ``gdice``: one module each) losses, and their weighted composition."""

from __future__ import annotations

from dualseg.losses import generalized_dice, regression, rmi, segmentation, ssim  # noqa: F401  (registers the losses)
from dualseg.losses.composite import TERM_KEYS, CompositeLoss, LossTerm, build_loss
from dualseg.losses.generalized_dice import GeneralizedDiceLoss
from dualseg.losses.rmi import RMILoss
from dualseg.losses.segmentation import BinaryCrossEntropyLoss, CrossEntropyLoss, DiceLoss
from dualseg.losses.ssim import SSIMLoss

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
