"""DS2F (Qiu et al., TPAMI 2023): the model around any backbone, the backbones from the baselines' parts, and the
registered ``ds2f_unet`` / ``ds2f_deeplabv3plus``."""

from __future__ import annotations

from dualseg.models.ds2f.backbones import (
    EncoderDecoderBackbone,
    FinalFeatures,
    SharedASPPBackbone,
    deeplabv3plus_backbone,
    unet_backbone,
)
from dualseg.models.ds2f.model import DS2F, SFEMS, DS2FBackbone, ESPCNHead
from dualseg.models.ds2f.variants import build_ds2f, ds2f_deeplabv3plus, ds2f_unet

__all__ = [
    "DS2F",
    "SFEMS",
    "DS2FBackbone",
    "ESPCNHead",
    "EncoderDecoderBackbone",
    "FinalFeatures",
    "SharedASPPBackbone",
    "build_ds2f",
    "deeplabv3plus_backbone",
    "ds2f_deeplabv3plus",
    "ds2f_unet",
    "unet_backbone",
]
