"""U-Net (Ronneberger et al., MICCAI 2015, arXiv:1505.04597) and Attention U-Net (Oktay et al., MIDL 2018,
arXiv:1804.03999), with "same" padding and optional normalisation, so output size = input size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.models.base import SegmentationModel
from dualseg.models.baselines._common import check_channels, check_deep_supervision, check_dropout
from dualseg.models.blocks import AttentionGate, DoubleConv, UpConv, check_up_mode, init_weights
from dualseg.registry import MODELS


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
    coarser map, as in Attention U-Net), then ``DoubleConv``."""

    def __init__(
        self, in_ch: int, skip_ch: int, out_ch: int, up_mode: str, norm: str | None, attention: bool = False
    ) -> None:
        super().__init__()
        self.up = UpConv(in_ch, out_ch, mode=up_mode)
        self.gate = AttentionGate(skip_ch, in_ch, norm=norm) if attention else None
        self.conv = DoubleConv(skip_ch + out_ch, out_ch, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


@MODELS.register("unet")
class UNet(SegmentationModel):
    """U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015).

    Options:
        channels: width of each resolution level, finest first; ``len(channels) - 1`` down-sampling stages, so
            H and W must be divisible by ``2 ** (len(channels) - 1)`` (``size_divisor``).
        norm: ``"batch"``, ``"instance"``, ``"group"`` or ``None`` after every 3x3 convolution.
        up_mode: ``"transpose"`` (2x2 up-convolution, as in the paper) or ``"bilinear"`` (+ 3x3 convolution).
        dropout: dropout probability at the end of the contracting path (the paper's drop-out layer).
        deep_supervision: in training mode also return ``"aux_1"``, ``"aux_2"``, ... logits from the coarser
            decoder stages (``aux_k`` from stride ``2**k``), bilinearly upsampled to the input size.
    """

    attention = False

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        norm: str | None = "batch",
        up_mode: str = "transpose",
        dropout: float = 0.0,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        name = type(self).__name__
        chans = check_channels(name, channels)
        check_up_mode(up_mode)
        self.channels = chans
        self.depth = len(chans) - 1
        self.size_divisor = 2**self.depth
        self.deep_supervision = check_deep_supervision(name, deep_supervision, chans)

        self.encoder = UNetEncoder(in_channels, chans, norm=norm)
        p = check_dropout(name, dropout)
        self.dropout = nn.Dropout(p) if p > 0 else nn.Identity()
        # decoder[0] is the deepest step: level depth -> depth - 1
        self.decoder = nn.ModuleList(
            UNetUpStage(chans[i + 1], chans[i], chans[i], up_mode, norm, attention=self.attention)
            for i in reversed(range(self.depth))
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        # aux_heads[k - 1] reads the decoder output at level k (stride 2**k)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(chans[k], num_classes, 1) for k in range(1, self.depth if self.deep_supervision else 1)
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        size = x.shape[-2:]
        skips = self.encoder(x)
        y = self.dropout(skips[-1])
        levels: dict[int, torch.Tensor] = {}
        for level, stage in zip(reversed(range(self.depth)), self.decoder):
            y = stage(y, skips[level])
            levels[level] = y
        out = {"seg": self.head(y)}
        if self.deep_supervision and self.training:
            for k, head in enumerate(self.aux_heads, start=1):
                out[f"aux_{k}"] = F.interpolate(head(levels[k]), size=size, mode="bilinear", align_corners=False)
        return out


@MODELS.register("attention_unet")
class AttentionUNet(UNet):
    """Attention U-Net (Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018).

    A U-Net whose skip connections pass through additive attention gates driven by the coarser decoder features
    (``AttentionGate``). Same options as ``unet``.
    """

    attention = True
