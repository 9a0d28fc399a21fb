"""Convolution blocks: ``ConvNormAct``, ``DepthwiseConv2d``, the U-Net ``DoubleConv``, norm/act factories, init."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dualseg.errors import DualsegError, did_you_mean

NORMS = ("batch", "instance", "group")
ACTS = ("relu", "leaky_relu", "gelu", "prelu", "silu")


def _unknown(kind: str, name: object, choices: tuple[str, ...]) -> DualsegError:
    hint = did_you_mean(name, choices) if isinstance(name, str) else ""
    return DualsegError(f"unknown {kind} '{name}'{hint}; choose one of {', '.join(choices)} or None")


def group_norm_groups(channels: int, max_groups: int = 32) -> int:
    """Groups for ``GroupNorm``: 32 (Wu & He, 2018) or the largest divisor of ``channels`` below it."""
    return math.gcd(max_groups, channels)


def make_norm(name: str | None, channels: int) -> nn.Module:
    """Normalisation layer by name: ``"batch"``, ``"instance"`` (affine), ``"group"`` or ``None`` (identity)."""
    if name is None or name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    raise _unknown("norm", name, NORMS)


def make_act(name: str | None) -> nn.Module:
    """Activation by name: ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"gelu"``, ``"prelu"``, ``"silu"`` or None."""
    if name is None or name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "prelu":
        return nn.PReLU()
    if name == "silu":
        return nn.SiLU(inplace=True)
    raise _unknown("activation", name, ACTS)


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise ``k x k`` convolution (``groups = channels``), optionally dilated, with "same" padding.

    Works around a PyTorch CPU bug (seen in 2.14): under bf16 autocast, a *dilated* depthwise convolution on a
    channels_last input returns a wrong weight gradient (off by orders of magnitude, sometimes ~1e19), which made
    DS2F training diverge to NaN. On the CPU the input of a dilated kernel is therefore made contiguous (NCHW);
    everywhere else this is a plain ``nn.Conv2d`` with the same parameters and state-dict keys.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, bias: bool = True) -> None:
        super().__init__(channels, channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                         dilation=dilation, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and self.dilation != (1, 1):
            x = x.contiguous()
        return super().forward(x)


class ConvNormAct(nn.Module):
    """``Conv2d -> norm -> activation`` with "same" padding for odd kernels.

    ``bias=None`` (default) uses a bias only when there is no norm layer (a norm's shift makes it redundant).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        if bias is None:
            bias = norm is None or norm == "none"
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.norm = make_norm(norm, out_ch)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DoubleConv(nn.Sequential):
    """Two 3x3 ``ConvNormAct`` layers: one U-Net stage (Ronneberger et al., MICCAI 2015)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        mid_ch: int | None = None,
        norm: str | None = "batch",
        act: str | None = "relu",
    ) -> None:
        mid_ch = out_ch if mid_ch is None else mid_ch
        super().__init__(
            ConvNormAct(in_ch, mid_ch, 3, norm=norm, act=act),
            ConvNormAct(mid_ch, out_ch, 3, norm=norm, act=act),
        )


def init_weights(module: nn.Module) -> nn.Module:
    """Kaiming-normal (fan_out, ReLU) convolutions with zero bias; norms to weight 1, bias 0.

    Afterwards every submodule that defines ``custom_init()`` (e.g. ICNR in ``PixelShuffleHead``) re-applies it,
    so calling this on a whole model never undoes a block's special initialisation. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        custom = getattr(m, "custom_init", None)
        if callable(custom):
            custom()
    return module
