"""Transformer blocks (patch embedding, weighted attention, unpatchify) and DRFL's PFAM (Eq. 14-15)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.pfam import PeakinessFusionAttention, PFAMBlock
from dualseg.models.blocks.transformer import (
    Mlp,
    PatchEmbed,
    TransformerBlock,
    Unpatchify,
    WeightedMultiHeadAttention,
    resample_pos_embed,
)

# ---------------------------------------------------------------- transformer pieces


def test_patch_embed_tokens_and_grid() -> None:
    embed = PatchEmbed(3, 10, 4)
    tokens, grid = embed(torch.randn(2, 3, 8, 12))
    assert tokens.shape == (2, 6, 10) and grid == (2, 3)
    with pytest.raises(DualsegError, match="not divisible by the patch size 4"):
        embed(torch.randn(1, 3, 8, 10))


def test_resample_pos_embed() -> None:
    pos = torch.randn(1, 16, 5)
    assert resample_pos_embed(pos, (4, 4), (4, 4)) is pos
    assert resample_pos_embed(pos, (4, 4), (8, 6)).shape == (1, 48, 5)
    const = torch.ones(1, 16, 5) * torch.arange(5.0)  # a constant map per dim stays constant under bicubic
    torch.testing.assert_close(resample_pos_embed(const, (4, 4), (6, 6)), torch.ones(1, 36, 5) * torch.arange(5.0))
    with pytest.raises(DualsegError, match="16 tokens"):
        resample_pos_embed(pos, (3, 3), (6, 6))


def test_attention_weights_sum_to_one_and_match_sdpa_path() -> None:
    torch.manual_seed(0)
    attn = WeightedMultiHeadAttention(16, 4).eval()
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    y, weights = attn(x, ctx, return_attention=True)
    assert y.shape == (2, 5, 16) and weights.shape == (2, 4, 5, 7)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(attn(x, ctx), y)  # scaled_dot_product_attention path == explicit softmax path
    _, self_weights = attn(x, return_attention=True)
    assert self_weights.shape == (2, 4, 5, 5)


def test_cross_attention_uses_context_for_keys_and_values() -> None:
    torch.manual_seed(0)
    attn = WeightedMultiHeadAttention(8, 2).eval()
    x, ctx = torch.randn(1, 4, 8), torch.randn(1, 6, 8)
    y = attn(x, ctx)
    assert not torch.allclose(attn(x, ctx + torch.randn_like(ctx)), y)  # context drives k/v
    assert not torch.allclose(attn(x + torch.randn_like(x), ctx), y)  # query input drives q
    assert not torch.allclose(attn(x), y)  # self-attention differs from cross-attention


def test_weighted_attention_gates_scale_q_k_v() -> None:
    torch.manual_seed(0)
    attn = WeightedMultiHeadAttention(8, 2).eval()
    for g in (attn.g_q, attn.g_k, attn.g_v):
        assert g.requires_grad and g.item() == pytest.approx(0.1)
    x = torch.randn(1, 5, 8)
    bias = attn.proj.bias.detach()
    y1 = attn(x) - bias
    with torch.no_grad():
        attn.g_v.fill_(2.0)  # v is scaled by sigmoid(g_v): the output before the projection bias scales with it
    y2 = attn(x) - bias
    torch.testing.assert_close(y2, y1 * torch.sigmoid(torch.tensor(2.0)) / torch.sigmoid(torch.tensor(0.1)))
    with torch.no_grad():
        attn.g_q.fill_(-30.0)  # q ~ 0: uniform attention, the output is the mean of the values
    _, weights = attn(x, return_attention=True)
    torch.testing.assert_close(weights, torch.full_like(weights, 1 / 5), atol=1e-5, rtol=0)


def test_weighted_attention_learnable_vs_frozen_gates() -> None:
    x = torch.randn(1, 3, 8)
    learn = WeightedMultiHeadAttention(8, 2)
    learn(x).sum().backward()
    assert all(g.grad is not None and g.grad.abs() > 0 for g in (learn.g_q, learn.g_k, learn.g_v))
    frozen = WeightedMultiHeadAttention(8, 2, learnable_weights=False)
    assert not any(g.requires_grad for g in (frozen.g_q, frozen.g_k, frozen.g_v))
    frozen(x).sum().backward()
    assert frozen.g_q.grad is None and frozen.q.weight.grad is not None
    with pytest.raises(DualsegError, match="divisible"):
        WeightedMultiHeadAttention(10, 4)


def test_mlp_and_transformer_blocks() -> None:
    assert Mlp(8, 16, act="relu")(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    x, ctx = torch.randn(2, 4, 8), torch.randn(2, 9, 8)
    block = TransformerBlock(8, 2, mlp_ratio=2.0)
    assert block(x).shape == (2, 4, 8) and block.mlp.fc1.out_features == 16
    cross = TransformerBlock(8, 2, cross=True).eval()
    y = cross(x, ctx)
    assert y.shape == (2, 4, 8)
    assert not torch.allclose(cross(x, torch.randn_like(ctx)), y)  # (an affine change would be undone by LN)
    with pytest.raises(DualsegError, match="needs a context"):
        cross(x)
    with pytest.raises(DualsegError, match="takes no context"):
        block(x, ctx)


def test_unpatchify_is_learned_and_places_tokens_in_their_tiles() -> None:
    up = Unpatchify(6, 2, 4)
    assert sum(p.numel() for p in up.parameters()) == 6 * 2 * 4 * 4 + 2
    with torch.no_grad():
        up.proj.weight.fill_(1.0)
        up.proj.bias.zero_()
    tokens = torch.zeros(1, 6, 6)  # grid 2x3
    tokens[0, 4] = 1.0  # token (row 1, col 1)
    y = up(tokens, (2, 3))
    assert y.shape == (1, 2, 8, 12)
    expected = torch.zeros(1, 2, 8, 12)
    expected[..., 4:8, 4:8] = 6.0
    torch.testing.assert_close(y, expected)
    with pytest.raises(DualsegError, match="do not fill"):
        up(tokens, (2, 2))


# ---------------------------------------------------------------- PFAM (Eq. 14-15)


def _hand_made() -> torch.Tensor:
    return torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4).pow(1.3) / 20


def test_peak_map_eq14_paper_and_code() -> None:
    x = _hand_made()
    paper = PeakinessFusionAttention(3, mode="paper")
    spatial_mean = x.sum(dim=(2, 3), keepdim=True) / 16
    torch.testing.assert_close(paper.peak(x), x - spatial_mean)
    torch.testing.assert_close(paper.peak(x).mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    code = PeakinessFusionAttention(3, mode="code")
    torch.testing.assert_close(code.peak(x), x - (x[:, 0:1] + x[:, 1:2] + x[:, 2:3]) / 3)
    assert paper.fuse_conv.in_channels == 4 and code.fuse_conv.in_channels == 2


def _center_only(conv: nn.Conv2d, taps: list[float]) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 1, 1] = torch.tensor(taps)


def test_spatial_attention_eq15_by_hand() -> None:
    x = _hand_made()
    peak = x - x.mean(dim=(2, 3), keepdim=True)
    pfa = PeakinessFusionAttention(3, mode="paper")
    _center_only(pfa.peak_conv, [1.0, -2.0, 0.5])  # Conv(F_peak) = F_peak0 - 2 F_peak1 + 0.5 F_peak2
    _center_only(pfa.fuse_conv, [0.7, 0.1, -0.3, 0.2])  # over Concat(Conv(F_peak), F_or)
    conv_peak = peak[:, 0] - 2 * peak[:, 1] + 0.5 * peak[:, 2]
    expected = torch.sigmoid(0.7 * conv_peak + 0.1 * x[:, 0] - 0.3 * x[:, 1] + 0.2 * x[:, 2]).unsqueeze(1)
    torch.testing.assert_close(pfa.weights(x), expected)
    torch.testing.assert_close(pfa(x), x * expected)

    code = PeakinessFusionAttention(3, mode="code")
    mean_c = x.mean(dim=1)
    p = x - mean_c.unsqueeze(1)
    _center_only(code.peak_conv, [1.0, -2.0, 0.5])
    _center_only(code.fuse_conv, [0.7, -0.4])  # over Concat(Conv(P), M)
    expected = torch.sigmoid(0.7 * (p[:, 0] - 2 * p[:, 1] + 0.5 * p[:, 2]) - 0.4 * mean_c).unsqueeze(1)
    torch.testing.assert_close(code.weights(x), expected)


def test_spatial_attention_3x3_neighbourhood() -> None:
    """A full 3x3 kernel: compare with F.conv2d on the hand-built concatenation."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 5)
    pfa = PeakinessFusionAttention(2)
    peak = x - x.mean(dim=(2, 3), keepdim=True)
    first = F.conv2d(peak, pfa.peak_conv.weight, padding=1)
    expected = torch.sigmoid(F.conv2d(torch.cat([first, x], 1), pfa.fuse_conv.weight, padding=1))
    torch.testing.assert_close(pfa.weights(x), expected)


@pytest.mark.parametrize("attention", ["pfam", "cbam", "none"])
def test_pfam_block_shapes_and_batch_one(attention: str) -> None:
    block = PFAMBlock(16, attention=attention).train()
    x = torch.randn(1, 16, 8, 8)  # batch 1 at the 8x8 bottleneck of a 256 px input: BatchNorm works
    y = block(x)
    assert y.shape == x.shape and (y >= 0).all()
    n_att = sum(p.numel() for p in block.attention.parameters())
    assert (n_att == 0) == (attention == "none")


def test_pfam_block_residual_and_errors() -> None:
    block = PFAMBlock(4, attention="none").eval()
    with torch.no_grad():
        block.conv2.conv.weight.zero_()
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), F.relu(x))  # zero branch: ReLU(x + 0)
    assert isinstance(PFAMBlock(8, "pfam", pfa_mode="code").attention[1], PeakinessFusionAttention)
    with pytest.raises(DualsegError, match="did you mean 'pfam'"):
        PFAMBlock(8, attention="pfan")
    with pytest.raises(DualsegError, match="did you mean 'paper'"):
        PeakinessFusionAttention(8, mode="papers")


def test_peak_map_local_average_pool() -> None:
    """Eq. 14 with pfa_pool='local': F minus the k x k mean around each pixel, border windows cut to the image."""
    x = _hand_made()
    local = PeakinessFusionAttention(3, mode="paper", pool="local", kernel=3)
    padded = F.pad(x, (1, 1, 1, 1))
    ones = F.pad(torch.ones(1, 1, 4, 4), (1, 1, 1, 1))
    window_sum = sum(padded[..., i : i + 4, j : j + 4] for i in range(3) for j in range(3))
    window_count = sum(ones[..., i : i + 4, j : j + 4] for i in range(3) for j in range(3))
    torch.testing.assert_close(local.peak(x), x - window_sum / window_count)
    assert window_count[0, 0, 0, 0] == 4 and window_count[0, 0, 1, 1] == 9  # a corner averages 4 pixels
    wide = PeakinessFusionAttention(3, pool="local", kernel=9)  # a window covering the whole 4x4 map = global
    torch.testing.assert_close(wide.peak(x), PeakinessFusionAttention(3).peak(x))
    block = PFAMBlock(8, "pfam", pfa_pool="local", pfa_kernel=5)
    assert block.attention[1].pool == "local" and block.attention[1].kernel == 5
    with pytest.raises(DualsegError, match="did you mean 'local'"):
        PeakinessFusionAttention(3, pool="locl")
    with pytest.raises(DualsegError, match="odd integer"):
        PeakinessFusionAttention(3, pool="local", kernel=4)
    with pytest.raises(DualsegError, match="needs pfa_mode 'paper'"):
        PeakinessFusionAttention(3, mode="code", pool="local")
