"""Peakiness Fusion Attention (PFA) and the PFAM residual block of DRFL (Xu et al., "Dual-stream Representation
Fusion Learning for accurate medical image segmentation", EAAI 2023, Sec. 3.3, Eq. 14-15, Fig. 4)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError, did_you_mean
from dualseg.models.blocks.attention import CBAM, ChannelAttention
from dualseg.models.blocks.conv import ConvNormAct

PFA_MODES = ("paper", "code")
PFA_POOLS = ("global", "local")
PFAM_ATTENTIONS = ("pfam", "cbam", "none")


class PeakinessFusionAttention(nn.Module):
    """Peakiness spatial attention, a 1-channel map ``F_spa`` (N, 1, H, W) in [0, 1] (Eq. 14-15).

    ``mode="paper"`` (Eq. 14-15 as written): ``F_peak = F - avgpool(F)``;
    ``F_spa = sigmoid(Conv3x3_{C+1->1}(Concat(Conv3x3_{C->1}(F_peak), F)))``. ``pool`` picks the avgpool of
    Eq. 14: ``"global"`` = the spatial mean of each channel (default), ``"local"`` = a ``kernel x kernel`` mean
    around each pixel (stride 1, "same" size, windows cut at the border average only the pixels inside).
    ``mode="code"`` (the authors' release): ``M`` = per-pixel mean over channels (1 x H x W), ``P = F - M``;
    ``F_spa = sigmoid(Conv3x3_{2->1}(Concat(Conv3x3_{C->1}(P), M)))``; ``pool`` must stay ``"global"``.
    Both convolutions are bias-free. ``weights(x)`` returns ``F_spa``; ``forward(x)`` returns ``x * F_spa``.
    """

    def __init__(self, channels: int, mode: str = "paper", pool: str = "global", kernel: int = 3) -> None:
        super().__init__()
        if mode not in PFA_MODES:
            raise DualsegError(
                f"unknown pfa_mode '{mode}'{did_you_mean(str(mode), PFA_MODES)}; choose one of {PFA_MODES}"
            )
        if pool not in PFA_POOLS:
            raise DualsegError(
                f"unknown pfa_pool '{pool}'{did_you_mean(str(pool), PFA_POOLS)}; choose one of {PFA_POOLS}"
            )
        if pool == "local" and mode == "code":
            raise DualsegError("pfa_pool 'local' needs pfa_mode 'paper' (the code's peak map pools over channels)")
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 3 or kernel % 2 == 0:
            raise DualsegError(f"pfa_kernel must be an odd integer >= 3, got {kernel!r}")
        self.mode, self.pool, self.kernel = mode, pool, kernel
        self.peak_conv = nn.Conv2d(channels, 1, 3, padding=1, bias=False)
        fuse_in = channels + 1 if mode == "paper" else 2
        self.fuse_conv = nn.Conv2d(fuse_in, 1, 3, padding=1, bias=False)

    def peak(self, x: torch.Tensor) -> torch.Tensor:
        """The peak map (Eq. 14): ``x`` minus its global or local spatial mean (paper) or its channel mean (code)."""
        return x - self._pooled(x)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "code":
            return x.mean(dim=1, keepdim=True)
        if self.pool == "local":
            return F.avg_pool2d(x, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)
        return F.adaptive_avg_pool2d(x, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial attention map ``F_spa`` (Eq. 15), shape (N, 1, H, W)."""
        pooled = self._pooled(x)
        partner = x if self.mode == "paper" else pooled  # code: the channel-mean map is computed once
        return torch.sigmoid(self.fuse_conv(torch.cat([self.peak_conv(x - pooled), partner], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class PFAMBlock(nn.Module):
    """Peakiness Fusion Attention Module (Fig. 4a): ``ReLU(x + A(BN(Conv3x3(ReLU(BN(Conv3x3(x)))))))``.

    ``attention`` picks ``A``: ``"pfam"`` = CBAM channel attention (reduction 16) then
    :class:`PeakinessFusionAttention` (Eq. 14-15, ``pfa_mode``, ``pfa_pool``, ``pfa_kernel``); ``"cbam"`` = CBAM
    channel + CBAM spatial attention (Table 7's comparison); ``"none"`` = identity, i.e. two plain convolutions
    with the residual (the paper's "DFM + RFTM" ablation: "no attention block in PFAM but two simple
    convolutions"). Convolutions are bias-free with BatchNorm, as in the released code. Channels and size are kept.
    """

    def __init__(
        self,
        channels: int,
        attention: str = "pfam",
        pfa_mode: str = "paper",
        pfa_pool: str = "global",
        pfa_kernel: int = 3,
    ) -> None:
        super().__init__()
        if attention not in PFAM_ATTENTIONS:
            raise DualsegError(
                f"unknown PFAM attention '{attention}'{did_you_mean(str(attention), PFAM_ATTENTIONS)}; "
                f"choose one of {PFAM_ATTENTIONS}"
            )
        self.conv1 = ConvNormAct(channels, channels, 3, norm="batch", act="relu")
        self.conv2 = ConvNormAct(channels, channels, 3, norm="batch", act=None)
        if attention == "pfam":
            self.attention: nn.Module = nn.Sequential(
                ChannelAttention(channels), PeakinessFusionAttention(channels, pfa_mode, pfa_pool, pfa_kernel)
            )
        elif attention == "cbam":
            self.attention = CBAM(channels)
        else:
            self.attention = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.attention(self.conv2(self.conv1(x))))
