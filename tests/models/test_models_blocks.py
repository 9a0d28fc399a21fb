"""Building blocks: shapes, hand-computed attention, error messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dualseg.errors import DualsegError
from dualseg.models.blocks import (
    ASPP,
    CBAM,
    AttentionGate,
    ChannelAttention,
    ConvNormAct,
    DepthwiseConv2d,
    DoubleConv,
    PixelShuffleHead,
    SpatialAttention,
    SqueezeExcite,
    UpConv,
    init_weights,
    make_act,
    make_norm,
)


@pytest.mark.parametrize("norm", ["batch", "instance", "group", None])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "gelu", "prelu", None])
def test_conv_norm_act_shapes_and_auto_bias(norm: str | None, act: str | None) -> None:
    block = ConvNormAct(3, 8, kernel_size=3, dilation=2, norm=norm, act=act)
    assert block(torch.randn(2, 3, 9, 11)).shape == (2, 8, 9, 11)
    assert (block.conv.bias is None) == (norm is not None)


def test_conv_norm_act_stride_and_explicit_bias() -> None:
    block = ConvNormAct(4, 4, stride=2, groups=2, bias=True)
    assert block.conv.bias is not None
    assert block(torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)


def test_group_norm_groups_divide_channels() -> None:
    for ch in (8, 48, 64, 100):
        norm = make_norm("group", ch)
        assert isinstance(norm, nn.GroupNorm) and ch % norm.num_groups == 0


def test_unknown_norm_and_act_names() -> None:
    with pytest.raises(DualsegError, match="did you mean 'batch'"):
        make_norm("btach", 8)
    with pytest.raises(DualsegError, match="did you mean 'relu'"):
        make_act("rleu")


def test_double_conv() -> None:
    block = DoubleConv(1, 8, norm="instance")
    assert sum(isinstance(m, nn.Conv2d) for m in block.modules()) == 2
    assert block(torch.randn(2, 1, 16, 16)).shape == (2, 8, 16, 16)


def test_channel_attention_by_hand() -> None:
    # C=2, r=2 -> hidden 1. W1 = [1, -1], W2 = [2, -1]^T.
    ca = ChannelAttention(2, reduction=2)
    with torch.no_grad():
        ca.mlp[0].weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
        ca.mlp[2].weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, -2.0]]]])
    # avg = (2.5, -0.5) -> relu(2.5 + 0.5) = 3 -> (6, -3); max = (4, 0) -> relu(4 - 0) = 4 -> (8, -4)
    expected = torch.sigmoid(torch.tensor([14.0, -7.0])).view(1, 2, 1, 1)
    torch.testing.assert_close(ca.weights(x), expected)
    torch.testing.assert_close(ca(x), x * expected)


def test_channel_attention_matches_formula_on_random_weights() -> None:
    torch.manual_seed(0)
    ca = ChannelAttention(8, reduction=4)
    x = torch.randn(3, 8, 5, 5)
    w1 = ca.mlp[0].weight.view(2, 8)
    w2 = ca.mlp[2].weight.view(8, 2)

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return torch.relu(v @ w1.T) @ w2.T

    expected = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))
    torch.testing.assert_close(ca.weights(x).view(3, 8), expected)
    assert all(m.bias is None for m in ca.mlp if isinstance(m, nn.Conv2d))


def test_spatial_attention_by_hand() -> None:
    sa = SpatialAttention(kernel_size=1)
    with torch.no_grad():
        sa.conv.weight.copy_(torch.tensor([0.5, -1.0]).view(1, 2, 1, 1))
    x = torch.randn(2, 3, 4, 4)
    expected = torch.sigmoid(0.5 * x.mean(1, keepdim=True) - x.amax(1, keepdim=True))
    torch.testing.assert_close(sa.weights(x), expected)
    assert SpatialAttention(7).weights(x).shape == (2, 1, 4, 4)


def test_cbam_is_channel_then_spatial() -> None:
    cbam = CBAM(16, reduction=4)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(cbam(x), cbam.spatial(cbam.channel(x)))


def test_squeeze_excite() -> None:
    se = SqueezeExcite(16, reduction=4)
    x = torch.randn(2, 16, 6, 6)
    w = se.weights(x)
    assert w.shape == (2, 16, 1, 1) and (w >= 0).all() and (w <= 1).all()
    torch.testing.assert_close(se(x), x * w)


@pytest.mark.parametrize("g_size", [8, 16])
def test_attention_gate(g_size: int) -> None:
    gate = AttentionGate(x_ch=8, g_ch=16)
    x, g = torch.randn(2, 8, 16, 16), torch.randn(2, 16, g_size, g_size)
    alpha = gate.gate(x, g)
    assert alpha.shape == (2, 1, 16, 16)
    assert (alpha >= 0).all() and (alpha <= 1).all()
    out = gate(x, g)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x * alpha)


@pytest.mark.parametrize("rates", [(6, 12, 18), (1, 2)])
def test_aspp_shapes(rates: tuple[int, ...]) -> None:
    aspp = ASPP(16, 32, rates=rates).eval()
    assert len(aspp.branches) == len(rates) + 1
    assert aspp(torch.randn(2, 16, 8, 10)).shape == (2, 32, 8, 10)


def test_aspp_errors() -> None:
    with pytest.raises(DualsegError, match="rates"):
        ASPP(16, 32, rates=(0, 6))
    aspp = ASPP(16, 32).train()
    with pytest.raises(DualsegError, match="batch"):
        aspp(torch.randn(1, 16, 8, 8))


@pytest.mark.parametrize("mode", ["transpose", "bilinear"])
def test_upconv(mode: str) -> None:
    up = UpConv(16, 8, mode=mode)
    assert up(torch.randn(2, 16, 5, 7)).shape == (2, 8, 10, 14)


def test_upconv_unknown_mode() -> None:
    with pytest.raises(DualsegError, match="did you mean 'bilinear'"):
        UpConv(16, 8, mode="bilinar")


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_pixel_shuffle_head_scale(scale: int) -> None:
    head = PixelShuffleHead(8, 3, scale=scale, mid_ch=4)
    assert head(torch.randn(2, 8, 5, 6)).shape == (2, 3, 5 * scale, 6 * scale)


def test_pixel_shuffle_head_icnr_survives_init_weights() -> None:
    head = init_weights(nn.Sequential(PixelShuffleHead(4, 1, scale=2)))[0]
    y = head.shuffle(head.expand(torch.randn(1, 4, 6, 6)))
    # ICNR: every 2x2 sub-pixel block starts as nearest-neighbour copies of one value
    torch.testing.assert_close(y, y[..., ::2, ::2].repeat_interleave(2, -2).repeat_interleave(2, -1))
    with pytest.raises(DualsegError, match="scale"):
        PixelShuffleHead(4, 1, scale=0)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_depthwise_conv_bf16_channels_last_weight_grad_matches_fp32(dilation):
    """Guards the CPU bf16 + channels_last dilated depthwise weight-gradient bug worked around in DepthwiseConv2d."""
    torch.manual_seed(0)
    conv = DepthwiseConv2d(16, 3, dilation=dilation)
    x = torch.randn(2, 16, 32, 32)  # the bug shows from 32x32 up
    weights = torch.linspace(0, 1, x.numel()).view_as(x)
    (conv(x) * weights).sum().backward()
    reference = conv.weight.grad.clone()
    conv.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x.contiguous(memory_format=torch.channels_last))
    (y.float() * weights).sum().backward()
    assert y.shape == (2, 16, 32, 32)
    rel = (conv.weight.grad - reference).abs().max() / reference.abs().max()
    assert rel < 0.05
