"""DS2F's shared-feature modules (blocks/ds2f.py): MRCAB/RCAB, MS-Conv, MSCG, MAF, FIM on tiny tensors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from dualseg.errors import DualsegError
from dualseg.models.blocks import ASPP, SqueezeExcite
from dualseg.models.blocks.ds2f import (
    CONTEXTS,
    FIM,
    GATES,
    MAF,
    MRCAB,
    RCAB,
    ImagePool,
    MSConv,
    MultiScaleCrossGate,
    PixelGate,
    SelfAttentionContext,
)


def _identity_depthwise(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = 1.0
        conv.bias.zero_()


# --- MRCAB / RCAB -------------------------------------------------------------------------------------------------
def test_mrcab_per_pixel_gate_matches_eq_9_to_11() -> None:
    torch.manual_seed(0)
    block = MRCAB(8, reduction=4)
    assert block.conv1.groups == block.conv2.groups == 8 and block.conv1.bias is not None
    assert isinstance(block.attention, PixelGate) and block.attention.fc1.out_channels == 2
    _identity_depthwise(block.conv1)
    _identity_depthwise(block.conv2)  # z = x
    x = torch.randn(2, 8, 5, 6)
    a = block.attention
    w = torch.sigmoid(a.fc2(nn.functional.leaky_relu(a.fc1(x), 0.01)))
    torch.testing.assert_close(block.weights(x), w)
    torch.testing.assert_close(block(x), x + w * x)
    assert w.shape == (2, 8, 5, 6) and w.std(dim=(2, 3)).min() > 0  # one weight per pixel and channel


def test_mrcab_pool_is_se_channel_attention_and_differs() -> None:
    torch.manual_seed(0)
    plain, pooled = MRCAB(8, 4, pool=False), MRCAB(8, 4, pool=True)
    assert isinstance(pooled.attention, SqueezeExcite) and isinstance(pooled.attention.act, nn.LeakyReLU)
    pooled.load_state_dict(plain.state_dict())  # same weights (SE and the pixel gate share names), pooled or not
    x = torch.randn(2, 8, 6, 6)
    assert pooled.weights(x).shape == (2, 8, 1, 1) and plain.weights(x).shape == (2, 8, 6, 6)
    assert pooled(x).shape == plain(x).shape == x.shape
    assert not torch.allclose(pooled(x), plain(x))


def test_rcab_is_rcan_block() -> None:
    block = RCAB(8, reduction=4)
    assert block.body[0].groups == 1 and isinstance(block.body[1], nn.ReLU)
    assert isinstance(block.attention, SqueezeExcite)
    assert block(torch.randn(1, 8, 4, 4)).shape == (1, 8, 4, 4)
    with pytest.raises(DualsegError, match="reduction"):
        MRCAB(8, reduction=0)


# --- MS-Conv --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("groups", [4, 6])
def test_msconv_dilation_per_group(groups: int) -> None:
    m = MSConv(4 * groups, groups=groups)
    assert m.kinds == ("conv1x1",) + ("dilated",) * (groups - 2) + ("pool",)
    assert m.convs[0].kernel_size == (1, 1)
    for i in range(1, groups - 1):
        conv = m.convs[i]
        assert conv.kernel_size == (3, 3) and conv.groups == 4 and conv.in_channels == 4
        assert conv.dilation == (i, i) and conv.padding == (i, i)
    assert isinstance(m.convs[-1], ImagePool) and isinstance(m.norm, nn.BatchNorm2d) and isinstance(m.act, nn.GELU)
    x = torch.randn(2, 4 * groups, 9, 7)
    assert m(x).shape == x.shape


def test_msconv_channel_divisibility_and_option_errors() -> None:
    with pytest.raises(DualsegError, match="cannot be split into 4 equal groups.*28 or 32"):
        MSConv(30, groups=4)
    with pytest.raises(DualsegError, match=">= 2"):
        MSConv(8, groups=1)
    with pytest.raises(DualsegError, match="did you mean 'pool'"):
        MSConv(8, branches=("conv1x1", "pol"))
    with pytest.raises(DualsegError, match="disabled"):
        MSConv(8, disabled="zero")


def test_msconv_branch_switches() -> None:
    x = torch.randn(2, 16, 8, 8)
    sub = MSConv(16, 4, branches=("dilated",))  # Table VI first row: 1x1 and pooling replaced by depthwise convs
    assert sub.kinds == ("dw_substitute", "dilated", "dilated", "dw_substitute")
    assert sub.convs[0].groups == 4 and sub.convs[0].dilation == (1, 1)
    assert sub.convs[3].groups == 4 and sub.convs[3].dilation == (3, 3)
    dense = MSConv(16, 4, branches=("conv1x1", "pool"))  # Table VI "DW x": dense dilated convolutions
    assert dense.kinds == ("conv1x1", "dense_dilated", "dense_dilated", "pool")
    assert dense.convs[1].groups == 1 and dense.convs[2].dilation == (2, 2)
    ident = MSConv(16, 4, branches=("conv1x1",), disabled="identity")
    assert ident.kinds == ("conv1x1", "identity", "identity", "identity")
    assert all(isinstance(c, nn.Identity) for c in ident.convs[1:])
    for m in (sub, dense, ident):
        assert m(x).shape == x.shape


def test_image_pool_is_constant_and_msconv_trains_at_batch_1() -> None:
    y = ImagePool(4)(torch.randn(1, 4, 5, 7))
    torch.testing.assert_close(y, y[..., :1, :1].expand_as(y))
    m = MSConv(8).train()
    m(torch.randn(1, 8, 6, 6)).sum().backward()  # no BN on a 1x1 map


# --- MSCG -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gate", "context"), list(itertools.product(GATES, CONTEXTS)))
def test_mscg_every_gate_and_context(gate: str, context: str) -> None:
    torch.manual_seed(0)
    m = MultiScaleCrossGate(12, 6, hidden=8, gate=gate, context=context, attn_patch=4)
    f_seg, f_sr = torch.randn(2, 12, 10, 10), torch.randn(2, 6, 10, 10)  # 10: not a multiple of the patch
    g_seg, g_sr = m.train()(f_seg, f_sr)
    assert g_seg.shape == f_seg.shape and g_sr.shape == f_sr.shape
    kinds = {type(x) for x in m.gate.context.modules()}
    expected = {"msconv": MSConv, "aspp": ASPP, "self_attention": SelfAttentionContext, "none": nn.Identity}
    assert expected[context] in kinds
    attn = m.gate.attention
    assert isinstance(attn, RCAB if gate == "rcab" else MRCAB)
    assert gate == "rcab" or attn.pool == (gate == "mrcab_gpool")


def test_mscg_code_form_of_eq_13_14() -> None:
    torch.manual_seed(0)
    m = MultiScaleCrossGate(8, 4, hidden=8).eval()
    f_seg, f_sr = torch.randn(2, 8, 6, 6), torch.randn(2, 4, 6, 6)
    a_seg, a_sr = m.weights(f_seg, f_sr)
    g_seg, g_sr = m(f_seg, f_sr)
    torch.testing.assert_close(g_seg, m.out_seg(a_seg * f_seg) + f_seg)
    torch.testing.assert_close(g_sr, m.out_sr(a_sr * f_sr) + f_sr)
    assert isinstance(m.to_seg.act, nn.GELU) and isinstance(m.fuse.norm, nn.BatchNorm2d)
    for conv in (m.out_seg, m.out_sr):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    g_seg, g_sr = m(f_seg, f_sr)
    torch.testing.assert_close(g_seg, f_seg)  # the residual
    torch.testing.assert_close(g_sr, f_sr)


def test_mscg_crosses_the_streams_and_trains_at_batch_1() -> None:
    torch.manual_seed(0)
    m = MultiScaleCrossGate(8, 8, hidden=8).train()
    f_seg = torch.randn(1, 8, 6, 6, requires_grad=True)
    f_sr = torch.randn(1, 8, 6, 6, requires_grad=True)
    g_seg, _ = m(f_seg, f_sr)
    g_seg.square().mean().backward()
    assert f_sr.grad is not None and f_sr.grad.abs().sum() > 0  # the seg output depends on the SR feature


def test_mscg_errors() -> None:
    with pytest.raises(DualsegError, match="did you mean 'mrcab'"):
        MultiScaleCrossGate(8, 8, gate="mrcb")
    with pytest.raises(DualsegError, match="unknown MSCG context"):
        MultiScaleCrossGate(8, 8, context="transformer")
    with pytest.raises(DualsegError, match="equal groups"):
        MultiScaleCrossGate(8, 8, hidden=10)
    with pytest.raises(DualsegError, match="equally sized"):
        MultiScaleCrossGate(8, 8, hidden=8)(torch.randn(2, 8, 4, 4), torch.randn(2, 8, 6, 6))


# --- MAF / FIM ------------------------------------------------------------------------------------------------------
def test_maf_attention_and_residual() -> None:
    torch.manual_seed(0)
    m = MAF(8, 4, hidden=8).eval()
    f_seg, f_sr = torch.randn(2, 8, 6, 6), torch.randn(2, 4, 6, 6)
    a_seg, a_sr = m.weights(f_seg, f_sr)
    assert a_seg.shape == f_seg.shape and a_sr.min() >= 0 and a_sr.max() <= 1
    g_seg, g_sr = m(f_seg, f_sr)
    torch.testing.assert_close(g_seg, a_seg * f_seg + f_seg)
    torch.testing.assert_close(g_sr, a_sr * f_sr + f_sr)
    ssc = m.fuse[1]
    assert [c.dilation for c in ssc.convs] == [(1, 1), (1, 1), (2, 2), (3, 3)] and ssc.convs[1].groups == 1


def test_fim_spatial_weight_on_outputs() -> None:
    torch.manual_seed(0)
    m = FIM(2, 3)
    assert [b.dilation for b in m.branches] == [(1, 1), (2, 2), (4, 4)] and m.branches[0].groups == 8
    seg, sr = torch.randn(2, 2, 12, 12), torch.randn(2, 3, 12, 12)
    w = m.weights(seg, sr)
    assert w.shape == (2, 1, 12, 12) and w.min() >= 0 and w.max() <= 1
    torch.testing.assert_close(m(seg, sr), w * seg + seg)
    with pytest.raises(DualsegError, match="equally sized"):
        m(seg, torch.randn(2, 3, 6, 6))


def test_msconv_pooled_group_is_left_out_of_batch_norm():
    """Identical samples make the pooled channels' batch variance zero; gradients must stay finite."""
    from dualseg.models.blocks.ds2f import MSConv

    block = MSConv(8, groups=4).train()
    x = torch.randn(1, 8, 6, 6).repeat(4, 1, 1, 1).requires_grad_(True)
    block(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and block.norm.num_features == 6
