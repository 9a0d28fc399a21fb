"""Attention blocks: CBAM channel/spatial attention, squeeze-and-excitation and the additive attention gate.

API: every block's ``forward`` returns the reweighted input (same shape as ``x``); the attention map itself comes
from ``weights(x)`` (``gate(x, g)`` for ``AttentionGate``), with values in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.conv import ConvNormAct, make_act


def _hidden(channels: int, reduction: int) -> int:
    return max(channels // reduction, 1)


class ChannelAttention(nn.Module):
    """CBAM channel attention (Woo et al., ECCV 2018).

    ``w = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` with one shared MLP of bias-free 1x1 convolutions
    ``C -> C/r -> C`` and a ReLU in between. ``forward`` returns ``x * w``; ``weights`` returns ``w`` (N, C, 1, 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return torch.sigmoid(avg + mx)

    def branch_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two pooling branches kept apart: ``(sigmoid(MLP(maxpool(x))), sigmoid(MLP(avgpool(x))))``."""
        w_max = torch.sigmoid(self.mlp(F.adaptive_max_pool2d(x, 1)))
        return w_max, torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class PooledSpatialAttention(nn.Module):
    """Spatial attention from ONE channel pooling: ``w = sigmoid(conv_kxk(pool_c(x)))`` with ``pool`` ``"max"`` or
    ``"avg"`` over channels and a 1 -> 1 convolution with bias (``kernel_size=1``: a learned affine map of the pooled
    value, DANIE's Eq. 3). ``forward`` returns ``x * w``; ``weights`` returns ``w`` (N, 1, H, W)."""

    def __init__(self, pool: str, kernel_size: int = 1) -> None:
        super().__init__()
        if pool not in ("max", "avg"):
            raise DualsegError(f"PooledSpatialAttention: pool must be 'max' or 'avg', got {pool!r}")
        self.pool = pool
        self.conv = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.amax(dim=1, keepdim=True) if self.pool == "max" else x.mean(dim=1, keepdim=True)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Woo et al., ECCV 2018).

    ``w = sigmoid(conv_kxk([mean_c(x); max_c(x)]))`` (one 2 -> 1 convolution, no bias). ``forward`` returns
    ``x * w``; ``weights`` returns ``w`` (N, 1, H, W).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): ``x * sigmoid(W2 act(W1 avgpool(x)))``, ``C -> C/r -> C``."""

    def __init__(self, channels: int, reduction: int = 16, act: str = "relu") -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = make_act(act)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class AttentionGate(nn.Module):
    """Additive attention gate of Attention U-Net (Oktay et al., MIDL 2018, arXiv:1804.03999).

    ``alpha = sigmoid(BN(psi(ReLU(BN(W_x x) + BN(W_g g)))))`` with 1x1 convolutions; ``forward`` returns
    ``x * alpha``. ``x`` is the skip connection (``x_ch`` channels), ``g`` the gating signal from the coarser
    decoder level (``g_ch`` channels); when ``g`` has another spatial size its projection is bilinearly resized
    to ``x``'s size before the sum. ``gate(x, g)`` returns ``alpha`` (N, 1, H, W).
    """

    def __init__(self, x_ch: int, g_ch: int, inter_ch: int | None = None, norm: str | None = "batch") -> None:
        super().__init__()
        inter_ch = _hidden(x_ch, 2) if inter_ch is None else inter_ch
        self.w_x = ConvNormAct(x_ch, inter_ch, 1, norm=norm, act=None)
        self.w_g = ConvNormAct(g_ch, inter_ch, 1, norm=norm, act=None)
        self.psi = ConvNormAct(inter_ch, 1, 1, norm=norm, act=None)

    def gate(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        gx = self.w_x(x)
        gg = self.w_g(g)
        if gg.shape[-2:] != gx.shape[-2:]:
            gg = F.interpolate(gg, size=gx.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.psi(F.relu(gx + gg)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x, g)
