"""Upsampling blocks: the decoder ``UpConv`` and the super-resolution ``PixelShuffleHead``."""

from __future__ import annotations

import torch
import torch.nn as nn

from dualseg.errors import DualsegError
from dualseg.models.blocks.conv import ConvNormAct, make_act, make_norm
from dualseg.models.options import check_choice

UP_MODES = ("transpose", "bilinear")


def check_up_mode(mode: str) -> str:
    """Return ``mode`` if it is a known upsampling mode, else raise a ``DualsegError``."""
    return check_choice("up_mode", mode, UP_MODES)


class UpConv(nn.Module):
    """Upsample by ``scale`` and change channels ``in_ch -> out_ch``.

    ``mode="transpose"``: a learned ``ConvTranspose2d`` (kernel = stride = ``scale``), the U-Net "up-convolution"
    (Ronneberger et al., 2015). ``mode="bilinear"``: bilinear interpolation followed by a ``kernel_size``
    convolution (``align_corners`` of the interpolation). ``norm``/``act`` (default none, a plain linear
    up-projection) follow in both modes.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mode: str = "transpose",
        scale: int = 2,
        kernel_size: int = 3,
        norm: str | None = None,
        act: str | None = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        check_up_mode(mode)
        self.mode = mode
        if mode == "transpose":
            has_norm = norm is not None and norm != "none"
            self.up = nn.ConvTranspose2d(in_ch, out_ch, scale, stride=scale, bias=not has_norm)
            self.post = nn.Sequential(make_norm(norm, out_ch), make_act(act))
        else:
            self.up = nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=align_corners)
            self.post = ConvNormAct(in_ch, out_ch, kernel_size, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.up(x))


class PixelShuffleHead(nn.Module):
    """Sub-pixel super-resolution head (Shi et al., ESPCN, CVPR 2016).

    ``conv3x3(in_ch -> mid_ch * scale^2) -> PixelShuffle(scale) -> act -> conv3x3(mid_ch -> out_ch)``: output is
    ``scale`` times larger in H and W. The first convolution uses ICNR initialisation (Aitken et al., 2017,
    arXiv:1707.02937), which starts the shuffle as nearest-neighbour upsampling and avoids checkerboard artefacts.
    """

    def __init__(
        self, in_ch: int, out_ch: int, scale: int = 2, mid_ch: int | None = None, act: str | None = "relu"
    ) -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise DualsegError(f"PixelShuffleHead scale must be a positive integer, got {scale!r}")
        mid_ch = in_ch if mid_ch is None else mid_ch
        self.scale = scale
        self.expand = nn.Conv2d(in_ch, mid_ch * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.act = make_act(act)
        self.out = nn.Conv2d(mid_ch, out_ch, 3, padding=1)
        self.custom_init()

    @torch.no_grad()
    def custom_init(self) -> None:
        """ICNR: every group of ``scale^2`` sub-pixel kernels starts identical."""
        s2 = self.scale * self.scale
        w = self.expand.weight
        base = torch.empty(w.shape[0] // s2, *w.shape[1:], dtype=w.dtype, device=w.device)
        nn.init.kaiming_normal_(base, mode="fan_in", nonlinearity="relu")
        w.copy_(base.repeat_interleave(s2, dim=0))
        if self.expand.bias is not None:
            nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.shuffle(self.expand(x))))
