"""Shared building blocks for the baselines and the dual-stream models."""

from __future__ import annotations

from dualseg.models.blocks.aspp import ASPP
from dualseg.models.blocks.attention import CBAM, AttentionGate, ChannelAttention, SpatialAttention, SqueezeExcite
from dualseg.models.blocks.conv import (
    ACTS,
    NORMS,
    ConvNormAct,
    DepthwiseConv2d,
    DoubleConv,
    init_weights,
    make_act,
    make_norm,
)
from dualseg.models.blocks.upsample import UP_MODES, PixelShuffleHead, UpConv, check_up_mode

__all__ = [
    "ACTS",
    "ASPP",
    "CBAM",
    "NORMS",
    "UP_MODES",
    "AttentionGate",
    "ChannelAttention",
    "ConvNormAct",
    "DepthwiseConv2d",
    "DoubleConv",
    "PixelShuffleHead",
    "SpatialAttention",
    "SqueezeExcite",
    "UpConv",
    "check_up_mode",
    "init_weights",
    "make_act",
    "make_norm",
]
