"""Baseline segmentation networks; importing this package registers them in ``MODELS``."""

from __future__ import annotations

from dualseg.models.baselines.deeplabv3plus import DeepLabV3Plus
from dualseg.models.baselines.unet import UNet, attention_unet, unet
from dualseg.models.baselines.unetpp import UNetPlusPlus

BASELINES = ("unet", "attention_unet", "unetpp", "deeplabv3plus")

__all__ = ["BASELINES", "DeepLabV3Plus", "UNet", "UNetPlusPlus", "attention_unet", "unet"]
