"""U-Net (Ronneberger et al., MICCAI 2015, arXiv:1505.04597) and Attention U-Net (Oktay et al., MIDL 2018,
arXiv:1804.03999), with "same" padding and optional normalisation, so output size = input size: the encoder and
decoder parts (also used by UNet++ and DS2F) and the registered ``unet`` / ``attention_unet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from dualseg.models.blocks import AttentionGate, DoubleConv, UpConv, check_up_mode, init_weights
from dualseg.models.builder import build_variant, variant_of
from dualseg.models.encoder_decoder import EncoderDecoderModel
from dualseg.models.options import check_channels, check_choice, check_deep_supervision, check_dropout
from dualseg.registry import MODELS

#: decoder up-sampling: the baseline's two modes and the DS2F code's bilinear x2 + 1x1 conv-norm-ReLU
DECODER_UP_MODES = ("transpose", "bilinear", "bilinear_1x1")


class UNetEncoder(nn.Module):
    """Contracting path: ``DoubleConv`` at full resolution, then ``MaxPool2d(2) + DoubleConv`` per level.

    Returns the feature map of every level, finest first (``len(channels)`` maps, level i at stride ``2**i``).
    """

    def __init__(self, in_ch: int, channels: Sequence[int], norm: str | None = "batch") -> None:
        super().__init__()
        stages = [DoubleConv(in_ch, channels[0], norm=norm)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            stages.append(nn.Sequential(nn.MaxPool2d(2), DoubleConv(c_in, c_out, norm=norm)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class UNetUpStage(nn.Module):
    """One expanding step: up-convolve the coarser map, concatenate the skip (optionally attention-gated by the
    coarser map, as in Attention U-Net), then ``DoubleConv``. ``up_mode`` is one of ``DECODER_UP_MODES``."""

    def __init__(
        self,
        in_ch: int,
        skip_ch: int,
        out_ch: int,
        up_mode: str,
        norm: str | None,
        attention: bool = False,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if up_mode == "bilinear_1x1":
            self.up = UpConv(in_ch, out_ch, "bilinear", kernel_size=1, norm=norm, act="relu",
                             align_corners=align_corners)
        else:
            self.up = UpConv(in_ch, out_ch, mode=up_mode)
        self.gate = AttentionGate(skip_ch, in_ch, norm=norm) if attention else None
        self.conv = DoubleConv(skip_ch + out_ch, out_ch, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetDecoder(nn.ModuleList):
    """Expanding path: one ``UNetUpStage`` per level, deepest first (item 0: level depth -> depth - 1).

    ``forward(feats)`` takes the encoder's maps (finest first) and returns the decoder output of every level,
    finest first: item ``k`` at stride ``2**k`` with ``channels[k]`` channels (item 0: the final features).
    """

    def __init__(
        self,
        channels: Sequence[int],
        norm: str | None,
        up_mode: str,
        attention: bool = False,
        align_corners: bool = False,
    ) -> None:
        check_choice("up_mode", up_mode, DECODER_UP_MODES)
        super().__init__(
            UNetUpStage(channels[i + 1], channels[i], channels[i], up_mode, norm, attention, align_corners)
            for i in reversed(range(len(channels) - 1))
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        y = feats[-1]
        levels = []
        for level, stage in zip(reversed(range(len(feats) - 1)), self):
            y = stage(y, feats[level])
            levels.append(y)
        return levels[::-1]


class UNetFamily(EncoderDecoderModel):
    """What U-Net and UNet++ share: one width per level, ``depth`` down-samplings, ``size_divisor = 2**depth``."""

    def set_levels(self, owner: str, channels: Sequence[int], up_mode: str, deep_supervision: bool) -> tuple[int, ...]:
        """Check and store ``channels``, ``depth``, ``size_divisor`` and ``deep_supervision``; return the widths."""
        chans = check_channels(owner, channels)
        check_up_mode(up_mode)
        self.channels = chans
        self.depth = len(chans) - 1
        self.size_divisor = 2**self.depth
        self.deep_supervision = check_deep_supervision(owner, deep_supervision, chans)
        return chans


class UNet(UNetFamily):
    """U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015); with ``attention=True`` Attention U-Net (Oktay et al., "Attention U-Net: Learning Where to Look
    for the Pancreas", MIDL 2018): the skip connections pass through additive attention gates driven by the
    coarser decoder features (``AttentionGate``).

    Options:
        channels: width of each resolution level, finest first; ``len(channels) - 1`` down-sampling stages, so
            H and W must be divisible by ``2 ** (len(channels) - 1)`` (``size_divisor``).
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``None`` after every 3x3 convolution.
        up_mode: ``"transpose"`` (2x2 up-convolution, as in the paper) or ``"bilinear"`` (+ 3x3 convolution).
        dropout: dropout probability at the end of the contracting path (the paper's drop-out layer).
        deep_supervision: in training mode also return ``"aux_1"``, ``"aux_2"``, ... logits from the coarser
            decoder stages (``aux_k`` from stride ``2**k``), bilinearly upsampled to the input size.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        norm: str | None = "batch",
        up_mode: str = "transpose",
        dropout: float = 0.0,
        deep_supervision: bool = False,
        attention: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        name = "AttentionUNet" if attention else "UNet"
        chans = self.set_levels(name, channels, up_mode, deep_supervision)
        self.attention = bool(attention)

        self.encoder = UNetEncoder(in_channels, chans, norm=norm)
        p = check_dropout(name, dropout)
        self.dropout = nn.Dropout(p) if p > 0 else nn.Identity()
        self.decoder = UNetDecoder(chans, norm, up_mode, attention=self.attention)
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        # aux_heads[k - 1] reads the decoder output at level k (stride 2**k)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(chans[k], num_classes, 1) for k in range(1, self.depth if self.deep_supervision else 1)
        )
        init_weights(self)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.encoder(x)
        return [*feats[:-1], self.dropout(feats[-1])]


UNET = {"attention": False}
ATTENTION_UNET = {"attention": True}


@MODELS.register("unet")
@variant_of(UNet, fixed=UNET)
def unet(**options: Any) -> UNet:
    """U-Net (Ronneberger et al., MICCAI 2015); options as ``UNet``."""
    return build_variant(UNet, UNET, options)


@MODELS.register("attention_unet")
@variant_of(UNet, fixed=ATTENTION_UNET)
def attention_unet(**options: Any) -> UNet:
    """Attention U-Net (Oktay et al., MIDL 2018): U-Net with attention gates on the skips; options as ``unet``."""
    return build_variant(UNet, ATTENTION_UNET, options)
