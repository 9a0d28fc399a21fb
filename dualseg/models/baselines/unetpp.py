"""UNet++ (Zhou et al., DLMIA 2018, arXiv:1807.10165): U-Net with nested, densely connected skip pathways."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from dualseg.models.baselines.unet import UNetEncoder, UNetFamily
from dualseg.models.blocks import DoubleConv, UpConv, init_weights
from dualseg.registry import MODELS


@MODELS.register("unetpp")
class UNetPlusPlus(UNetFamily):
    """UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh & Liang, "UNet++: A Nested U-Net Architecture for Medical Image
    Segmentation", DLMIA 2018).

    Node ``X[i][j]`` (level ``i``, column ``j``) is ``DoubleConv(concat(X[i][0..j-1], Up(X[i+1][j-1])))``;
    column 0 is the U-Net encoder. ``"seg"`` comes from ``X[0][depth]``. The nested decoder's parts are ``ups``
    and ``nodes`` (keyed ``"i_j"``), held by the model itself (the names its checkpoints hold).

    Options:
        channels: width of each level, finest first; depth = ``len(channels) - 1``, ``size_divisor = 2**depth``.
        norm: normalisation after every 3x3 convolution (``"batch"``, ``"instance"``, ``"group"``, ``None``).
        up_mode: ``"transpose"`` (as in the authors' code) or ``"bilinear"``.
        deep_supervision: in training mode also return ``"aux_j"`` = 1x1-conv logits of ``X[0][j]`` for
            ``j = 1 .. depth - 1`` (already at the input size). Eval mode returns only ``"seg"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        norm: str | None = "batch",
        up_mode: str = "transpose",
        deep_supervision: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        chans = self.set_levels("UNetPlusPlus", channels, up_mode, deep_supervision)

        self.encoder = UNetEncoder(in_channels, chans, norm=norm)
        self.ups = nn.ModuleDict()
        self.nodes = nn.ModuleDict()
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                self.ups[f"{i}_{j}"] = UpConv(chans[i + 1], chans[i], mode=up_mode)
                self.nodes[f"{i}_{j}"] = DoubleConv((j + 1) * chans[i], chans[i], norm=norm)
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(chans[0], num_classes, 1) for _ in range(1, self.depth if self.deep_supervision else 1)
        )
        init_weights(self)

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """``[X[0][depth], X[0][1], ..., X[0][depth - 1]]``: the final node, then the deep-supervision nodes."""
        grid: list[list[torch.Tensor]] = [[f] for f in feats]  # grid[i][j] = X[i][j]
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                up = self.ups[f"{i}_{j}"](grid[i + 1][j - 1])
                grid[i].append(self.nodes[f"{i}_{j}"](torch.cat([*grid[i][:j], up], dim=1)))
        return [grid[0][self.depth], *grid[0][1 : self.depth]]
