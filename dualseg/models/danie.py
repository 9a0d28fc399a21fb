"""DANIE: Dual Attention Network with Integrated Enhancement for medical image segmentation (paper 003, no public
code). A MaxViT self-attentional stream (SAP) and a convolutional hierarchical-attentional stream (HAP) at strides
4/8/16/32, fused deep-to-shallow by Joint Preservation stages with four summed prediction heads (Eq. 12).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.base import SegmentationModel, nearest_valid
from dualseg.models.baselines.deeplabv3plus import load_encoder_weights
from dualseg.models.blocks.conv import ConvNormAct, init_weights
from dualseg.models.blocks.danie import (
    ATTENTION_ORDERS,
    FUSIONS,
    HierarchicalAttention,
    JointPreservation,
)
from dualseg.models.blocks.upsample import UpConv
from dualseg.models.builder import build_variant, variant_of
from dualseg.models.options import check_choice
from dualseg.registry import MODELS

STREAMS = ("dual", "sap", "hap")
PARTITION_RATIO = 32  # MaxViT's window and grid size is img_size // 32 (timm MaxxVitTransformerCfg)


def create_maxvit(name: str, in_channels: int, img_size: int, pretrained: bool) -> nn.Module:
    """A timm MaxViT without its classifier head, built for ``img_size`` (window = grid = img_size // 32)."""
    try:
        encoder = timm.create_model(
            name, pretrained=pretrained, img_size=img_size, in_chans=in_channels, num_classes=0
        )
    except OSError as e:  # no network / no cached weights
        raise DualsegError(
            f"DANIE: could not fetch ImageNet weights for '{name}' ({type(e).__name__}); when offline, download "
            "them elsewhere and pass pretrained_path=<file>, or use pretrained=False"
        ) from e
    encoder.prune_intermediate_layers(indices=4, prune_head=True)
    return encoder


def load_maxvit_weights(encoder: nn.Module, path: str | os.PathLike[str], in_channels: int) -> None:
    """Load a local timm MaxViT checkpoint: the classifier head is dropped and the relative-position bias tables are
    resized to this ``img_size``'s windows (timm's ``checkpoint_filter_fn``); then as ``load_encoder_weights``."""
    from timm.models.maxxvit import checkpoint_filter_fn

    own = set(encoder.state_dict())

    def keep_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = {k: v for k, v in state.items() if k in own or not k.startswith("head.")}
        return checkpoint_filter_fn(state, encoder) if any(k in own for k in state) else state

    try:
        load_encoder_weights(encoder, path, in_channels, state_filter=keep_encoder)
    except DualsegError as e:
        raise DualsegError(str(e).replace("deeplabv3plus:", "DANIE:", 1)) from None


class HAPStream(nn.Module):
    """The hierarchical-attentional stream: a convolutional embedding to H/4 (two stride-2 3x3 conv-BN-GELU, Section
    3.2), then per stage a stride-2 3x3 conv-BN-GELU (stages 2-4) and a HAP block (Eq. 2-5)."""

    def __init__(self, in_channels: int, widths: Sequence[int], **hap_options: object) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            ConvNormAct(in_channels, widths[0] // 2, 3, stride=2, act="gelu"),
            ConvNormAct(widths[0] // 2, widths[0], 3, stride=2, act="gelu"),
        )
        self.down = nn.ModuleList(
            [nn.Identity()] + [ConvNormAct(a, b, 3, stride=2, act="gelu") for a, b in zip(widths[:-1], widths[1:])]
        )
        self.stages = nn.ModuleList([HierarchicalAttention(c, c, **hap_options) for c in widths])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.embed(x)
        feats = []
        for down, stage in zip(self.down, self.stages):
            h = stage(down(h))
            feats.append(h)
        return feats


class DANIE(SegmentationModel):
    """DANIE (paper 003, Sections 3.2-3.4).

    SAP stream: a timm MaxViT (the conv stem and the stride-2 MBConv of stage 1 are the embedding to H/4; stage
    outputs at strides 4/8/16/32). HAP stream: ``HAPStream`` with the same widths. Joint Preservation runs from the
    deepest stage to the shallowest (as the CASCADE decoder the paper builds on): ``j_4 = ConvBlock(e_4)``, then
    ``j_i = ConvBlock(Cat[e_i, up(j_{i+1})])`` where ``up`` is a bilinear x2 upsampling and a 3x3 conv-BN-GELU to
    this stage's width (the paper's ``j_{i-1}`` has the same size as ``e_i`` but it does not say how it gets there).
    Head ``i`` is a 1x1 conv of ``j_i`` bilinearly upsampled to the input size; ``"seg"`` is
    ``sum(alpha_i p_i)`` (Eq. 12, all alpha 1), ``"heads"`` the list ``[p_1, p_2, p_3, p_4]`` (stride 4 first).

    Options:
        img_size: the square input size MaxViT's windows are built for; a multiple of 32. Inputs must be a
            multiple of it (the ``size_divisor``), so train and evaluate at ``img_size`` (``data.resize``).
        encoder: timm MaxViT name (``maxvit_tiny_tf_224`` for danie_s, ``maxvit_small_tf_224`` for danie_l).
        pretrained: timm's ImageNet weights (downloads them). pretrained_path: a local timm MaxViT checkpoint.
        streams: ``"dual"``; ``"sap"`` = w/o hierarchical attention (Table 5, A.1); ``"hap"`` = w/o self-attention
            (A.2, HAP stream at the MaxViT widths). Single-stream models need ``fusion="add"``.
        channel_attention / spatial_attention: False drops one attention of the HAP block (A.4 / A.3).
        attention_order: ``"channel_first"`` (default, B.3/B.4) or ``"spatial_first"`` (B.1/B.2).
        dynamic_calibration: False replaces Eq. 4's learnable weights by a plain sum (B.1/B.3).
        fusion: ``"jp"`` (C.5), ``"add"`` (C.2, also Tables 5-6's setting), ``"concat_res"`` (C.1), ``"eh_add"``
            (C.3), ``"es_add"`` (C.4).
        head_weights: the alphas of Eq. 12.
        reduction: channel-attention MLP reduction; eh_ratio: EH bottleneck ratio.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 9,
        img_size: int = 224,
        encoder: str = "maxvit_tiny_tf_224",
        pretrained: bool = False,
        pretrained_path: str | os.PathLike[str] | None = None,
        streams: str = "dual",
        channel_attention: bool = True,
        spatial_attention: bool = True,
        attention_order: str = "channel_first",
        dynamic_calibration: bool = True,
        fusion: str = "jp",
        head_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        reduction: int = 16,
        eh_ratio: float = 0.25,
    ) -> None:
        super().__init__(in_channels, num_classes)
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < PARTITION_RATIO:
            raise DualsegError(f"DANIE: img_size must be an integer multiple of 32 (e.g. 224), got {img_size!r}")
        if img_size % PARTITION_RATIO:
            raise DualsegError(
                f"DANIE: img_size must be a multiple of 32 (MaxViT windows are img_size/32), got {img_size}; "
                f"nearest valid sizes: {nearest_valid(img_size, PARTITION_RATIO)}"
            )
        self.streams = check_choice("streams", streams, STREAMS, "DANIE")
        check_choice("attention order", attention_order, ATTENTION_ORDERS, "DANIE")
        check_choice("fusion", fusion, FUSIONS, "DANIE")
        if streams != "dual" and fusion != "add":
            raise DualsegError(f"DANIE: streams={streams} has one stream; use fusion=add (Table 5's setting)")
        if len(head_weights) != 4:
            raise DualsegError(f"DANIE: head_weights needs 4 numbers (Eq. 12's alphas), got {list(head_weights)}")
        self.img_size = img_size
        self.size_divisor = img_size
        self.head_weights = [float(a) for a in head_weights]

        sap = create_maxvit(encoder, in_channels, img_size, pretrained and pretrained_path is None)
        if pretrained_path is not None:
            load_maxvit_weights(sap, pretrained_path, in_channels)
        widths = [info["num_chs"] for info in sap.feature_info[-4:]]
        self.widths = widths
        self.sap = sap if streams != "hap" else None
        self.hap = None
        if streams != "sap":
            self.hap = HAPStream(
                in_channels,
                widths,
                reduction=reduction,
                order=attention_order,
                channel=channel_attention,
                spatial=spatial_attention,
                dynamic_calibration=dynamic_calibration,
            )
        self.joint = nn.ModuleList(
            [JointPreservation(c, fusion, has_previous=i < 3, eh_ratio=eh_ratio) for i, c in enumerate(widths)]
        )
        self.up = nn.ModuleList(
            [UpConv(widths[i + 1], widths[i], mode="bilinear", norm="batch", act="gelu") for i in range(3)]
        )
        self.heads = nn.ModuleList([nn.Conv2d(c, num_classes, 1) for c in widths])
        init_weights(self.hap if self.hap is not None else nn.Identity())
        init_weights(self.joint)
        init_weights(self.up)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        self.check_input(x)
        s_feats = self.sap.forward_intermediates(x, indices=4, intermediates_only=True) if self.sap else [None] * 4
        h_feats = self.hap(x) if self.hap is not None else [None] * 4
        heads: list[torch.Tensor] = []
        previous = None
        for i in range(3, -1, -1):
            j = self.joint[i](s_feats[i], h_feats[i], previous)
            heads.insert(0, F.interpolate(self.heads[i](j), size=x.shape[-2:], mode="bilinear", align_corners=False))
            if i > 0:
                previous = self.up[i - 1](j)
        seg = sum(a * p for a, p in zip(self.head_weights, heads))
        return {"seg": seg, "heads": heads}


DANIE_S = {"encoder": "maxvit_tiny_tf_224"}
DANIE_L = {"encoder": "maxvit_small_tf_224"}


@MODELS.register("danie_s")
@variant_of(DANIE, fixed=DANIE_S)
def danie_s(**options: Any) -> DANIE:
    """DANIE-S: MaxViT-tiny self-attentional stream, widths 64/128/256/512 (Section 4.2); options as ``DANIE``."""
    return build_variant(DANIE, DANIE_S, options)


@MODELS.register("danie_l")
@variant_of(DANIE, fixed=DANIE_L)
def danie_l(**options: Any) -> DANIE:
    """DANIE-L: MaxViT-small self-attentional stream, widths 96/192/384/768 (Section 4.2); options as ``DANIE``."""
    return build_variant(DANIE, DANIE_L, options)
