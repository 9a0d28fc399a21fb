"""Atrous spatial pyramid pooling (DeepLabV3, Chen et al., 2017, arXiv:1706.05587)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.conv import ConvNormAct


class ASPP(nn.Module):
    """ASPP: a 1x1 branch, one 3x3 atrous branch per rate, and an image-pooling branch (global average pool,
    1x1 conv, resized back), each ``conv -> norm -> act``; concatenated and projected by a 1x1 ``ConvNormAct``,
    then dropout. Output: ``out_ch`` channels at the input's spatial size.

    DeepLabV3 uses rates (6, 12, 18) at output stride 16 and (12, 24, 36) at output stride 8.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        dropout: float = 0.5,
        norm: str | None = "batch",
        act: str | None = "relu",
    ) -> None:
        super().__init__()
        rates = tuple(rates)
        if not rates or any(not isinstance(r, int) or r < 1 for r in rates):
            raise DualsegError(f"ASPP rates must be positive integers, got {rates!r}")
        self.norm = norm
        branches = [ConvNormAct(in_ch, out_ch, 1, norm=norm, act=act)]
        branches += [ConvNormAct(in_ch, out_ch, 3, dilation=r, norm=norm, act=act) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = ConvNormAct(in_ch, out_ch, 1, norm=norm, act=act)
        self.project = ConvNormAct(out_ch * (len(rates) + 2), out_ch, 1, norm=norm, act=act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.norm == "batch" and x.shape[0] == 1:
            raise DualsegError(
                "ASPP with batch norm needs a batch of at least 2 in training (its image-pooling branch normalises "
                "one value per channel); use batch_size >= 2"
            )
        outs = [branch(x) for branch in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.dropout(self.project(torch.cat(outs, dim=1)))
