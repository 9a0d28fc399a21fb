"""The single-image super-resolution teacher of DRFL's distillation (paper Sec. 3.1.2).

The paper trains WSISR (Li et al., 2021; a GAN for whole-slide images, not runnable offline here) on the dataset's
own images, downsampled by 2 as input and the originals as targets, and regresses DRFL's SR stream onto the
teacher's outputs. dualseg's teacher is an EDSR-style residual network (Lim et al., CVPR-W 2017): conv, residual
blocks without normalisation, sub-pixel upsampling, plus a global bicubic skip so it only learns the detail bicubic
upsampling misses. It is not a segmentation model, so it is not in the model registry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualseg.models.blocks import PixelShuffleHead


class ResidualBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, scaled and added to the input (EDSR's block, no BatchNorm)."""

    def __init__(self, channels: int, res_scale: float = 0.1) -> None:
        super().__init__()
        conv = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2)]
        self.body = nn.Sequential(conv[0], nn.ReLU(inplace=True), conv[1])
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class SRTeacher(nn.Module):
    """EDSR-style x``scale`` super-resolution: ``bicubic(x) + tail(body(head(x)))``."""

    def __init__(self, in_channels: int = 1, scale: int = 2, features: int = 32, blocks: int = 8) -> None:
        super().__init__()
        self.in_channels, self.scale, self.features, self.blocks = in_channels, scale, features, blocks
        self.head = nn.Conv2d(in_channels, features, 3, padding=1)
        self.body = nn.Sequential(
            *[ResidualBlock(features) for _ in range(blocks)], nn.Conv2d(features, features, 3, padding=1)
        )
        self.tail = PixelShuffleHead(features, in_channels, scale=scale, act=None)
        nn.init.zeros_(self.tail.out.weight)  # start as exact bicubic upsampling; training can only add detail
        nn.init.zeros_(self.tail.out.bias)

    def config(self) -> dict[str, int]:
        return {"in_channels": self.in_channels, "scale": self.scale, "features": self.features, "blocks": self.blocks}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(x)
        return base + self.tail(self.body(h) + h)
