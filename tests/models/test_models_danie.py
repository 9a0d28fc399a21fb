"""DANIE: HAP / ES / EH / Joint Preservation blocks (hand-computed references), ablation options, the model contract
(four heads summed), 1- and 3-channel inputs, gradients and input-size errors. Models use small inputs; the
variant tests use timm's smallest MaxViT (``maxvit_pico_rw_256``) so the suite stays fast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dualseg
from dualseg.errors import DualsegError
from dualseg.losses import build_loss
from dualseg.models.blocks.attention import ChannelAttention, PooledSpatialAttention
from dualseg.models.blocks.danie import (
    ChannelSelfAttention,
    GlobalContextGate,
    HierarchicalAttention,
    JointPreservation,
)
from dualseg.models.danie import DANIE

PICO = "maxvit_pico_rw_256"


def pico(**options: object) -> DANIE:
    torch.manual_seed(0)
    return DANIE(in_channels=1, num_classes=3, img_size=64, encoder=PICO, **options).eval()


# --- attention extensions -------------------------------------------------------------------------------------------


def test_channel_attention_branches_match_the_mlp_per_pooling() -> None:
    torch.manual_seed(0)
    ca = ChannelAttention(8, reduction=2)
    x = torch.randn(2, 8, 5, 5)
    w_max, w_avg = ca.branch_weights(x)
    torch.testing.assert_close(w_max, torch.sigmoid(ca.mlp(x.amax(dim=(2, 3), keepdim=True))))
    torch.testing.assert_close(w_avg, torch.sigmoid(ca.mlp(x.mean(dim=(2, 3), keepdim=True))))


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooled_spatial_attention_is_an_affine_map_of_the_channel_pooling(pool: str) -> None:
    sa = PooledSpatialAttention(pool)
    with torch.no_grad():
        sa.conv.weight.fill_(2.0)
        sa.conv.bias.fill_(-1.0)
    x = torch.randn(2, 4, 3, 3)
    pooled = x.amax(1, keepdim=True) if pool == "max" else x.mean(1, keepdim=True)
    torch.testing.assert_close(sa(x), x * torch.sigmoid(2 * pooled - 1))
    with pytest.raises(DualsegError, match="'max' or 'avg'"):
        PooledSpatialAttention("sum")


# --- HAP (Eq. 2-5) --------------------------------------------------------------------------------------------------


def hap_reference(block: HierarchicalAttention, h: torch.Tensor) -> torch.Tensor:
    """Eq. 2-5 written out for the channel-first, dynamically calibrated block."""
    mlp = block.channel.mlp
    m_max = torch.sigmoid(mlp(h.amax(dim=(2, 3), keepdim=True))) * h
    m_avg = torch.sigmoid(mlp(h.mean(dim=(2, 3), keepdim=True))) * h
    o_max = torch.sigmoid(block.spatial[0].conv(m_max.amax(1, keepdim=True))) * m_max
    o_avg = torch.sigmoid(block.spatial[1].conv(m_avg.mean(1, keepdim=True))) * m_avg
    o_d = block.w_max * o_max + block.w_avg * o_avg
    return block.block(torch.sigmoid(block.calibrate(o_d)) * h)


def test_hap_matches_equations_2_to_5() -> None:
    torch.manual_seed(0)
    block = HierarchicalAttention(8, 8, reduction=2).eval()
    with torch.no_grad():
        block.w_max.fill_(0.3)
        block.w_avg.fill_(1.2)
    h = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(h), hap_reference(block, h))


def test_hap_spatial_first_and_without_calibration() -> None:
    torch.manual_seed(0)
    block = HierarchicalAttention(8, 8, reduction=2, order="spatial_first", dynamic_calibration=False).eval()
    h = torch.randn(2, 8, 6, 6)
    s_max = block.spatial[0](h)
    s_avg = block.spatial[1](h)
    o_max = s_max * block.channel.branch_weights(s_max)[0]
    o_avg = s_avg * block.channel.branch_weights(s_avg)[1]
    expected = block.block(torch.sigmoid(block.calibrate(o_max + o_avg)) * h)
    torch.testing.assert_close(block(h), expected)
    assert not hasattr(block, "w_max")


@pytest.mark.parametrize("channel,spatial", [(True, False), (False, True)])
def test_hap_without_one_attention(channel: bool, spatial: bool) -> None:
    torch.manual_seed(0)
    block = HierarchicalAttention(8, 8, reduction=2, channel=channel, spatial=spatial).eval()
    h = torch.randn(1, 8, 4, 4)
    o_max, o_avg = block.branches(h)
    if channel:
        w_max, w_avg = block.channel.branch_weights(h)
        torch.testing.assert_close(o_max, h * w_max)
        torch.testing.assert_close(o_avg, h * w_avg)
    else:
        torch.testing.assert_close(o_max, block.spatial[0](h))
        torch.testing.assert_close(o_avg, block.spatial[1](h))


def test_hap_option_errors() -> None:
    with pytest.raises(DualsegError, match="channel or spatial"):
        HierarchicalAttention(8, 8, channel=False, spatial=False)
    with pytest.raises(DualsegError, match="channel_first"):
        HierarchicalAttention(8, 8, order="channel_frist")


# --- ES (Eq. 6-7), EH (Eq. 8-9), JP (Eq. 10-11) ---------------------------------------------------------------------


def test_es_with_lambda_zero_is_the_identity() -> None:
    s = torch.randn(2, 6, 4, 5)
    torch.testing.assert_close(ChannelSelfAttention()(s), s)


def test_es_matches_equations_6_and_7() -> None:
    es = ChannelSelfAttention()
    with torch.no_grad():
        es.gamma.fill_(0.7)
    s = torch.randn(2, 6, 4, 5) * 0.3
    flat = s.flatten(2)
    out = torch.empty_like(flat)
    for n in range(2):
        energy = flat[n] @ flat[n].T  # S1 . S2, C x C
        w = torch.exp(energy) / torch.exp(energy).sum(dim=0, keepdim=True)  # Eq. 6: normalised over i
        for j in range(6):
            out[n, j] = 0.7 * sum(w[i, j] * flat[n, i] for i in range(6)) + flat[n, j]
    torch.testing.assert_close(es(s), out.reshape_as(s))


def test_eh_matches_equations_8_and_9() -> None:
    torch.manual_seed(0)
    eh = GlobalContextGate(8, ratio=0.5).eval()
    x = torch.randn(2, 8, 3, 4)
    logits = eh.attend(x).flatten(1)  # (N, HW)
    weights = torch.softmax(logits, dim=1)
    context = torch.einsum("nch,nh->nc", x.flatten(2), weights)[..., None, None]
    torch.testing.assert_close(eh.context(x), context)
    c2, ln, _, c3 = eh.transform
    gate = torch.sigmoid(c3(F.gelu(ln(c2(context)))))
    torch.testing.assert_close(eh(x), gate * x)


@pytest.mark.parametrize("fusion", ["jp", "add", "concat_res", "eh_add", "es_add"])
def test_joint_preservation_fusions(fusion: str) -> None:
    torch.manual_seed(0)
    jp = JointPreservation(8, fusion).eval()
    s, h, prev = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    if fusion == "concat_res":
        e = jp.mix(torch.cat([s, h], 1)) + s + h
    else:
        es = jp.es(s) if fusion in ("jp", "es_add") else s
        eh = jp.eh(h) if fusion in ("jp", "eh_add") else h
        e = es + eh
    assert (jp.es is None) == (fusion not in ("jp", "es_add"))
    assert (jp.eh is None) == (fusion not in ("jp", "eh_add"))
    torch.testing.assert_close(jp.fuse(s, h), e)
    torch.testing.assert_close(jp(s, h, prev), jp.block(torch.cat([e, prev], 1)))
    deepest = JointPreservation(8, fusion, has_previous=False).eval()
    assert deepest(s, h, None).shape == s.shape


def test_joint_preservation_single_stream_needs_add() -> None:
    s = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(JointPreservation(8, "add").fuse(s, None), s)
    with pytest.raises(DualsegError, match="fusion=add"):
        JointPreservation(8, "jp").fuse(s, None)
    with pytest.raises(DualsegError, match="choose one of"):
        JointPreservation(8, "sum")


# --- the model -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def danie_s_64() -> DANIE:
    torch.manual_seed(0)
    return dualseg.create_model("danie_s", in_channels=1, num_classes=4, img_size=64, pretrained=False)


def test_danie_s_contract_four_heads_summed(danie_s_64: DANIE) -> None:
    assert danie_s_64.widths == [64, 128, 256, 512]
    danie_s_64.eval()
    with torch.no_grad():
        out = danie_s_64(torch.randn(1, 1, 64, 64))
    assert out["seg"].shape == (1, 4, 64, 64)
    assert len(out["heads"]) == 4 and all(p.shape == (1, 4, 64, 64) for p in out["heads"])
    torch.testing.assert_close(out["seg"], sum(out["heads"]))


def test_danie_s_gradients_reach_both_streams_and_all_heads(danie_s_64: DANIE) -> None:
    danie_s_64.train()
    danie_s_64.zero_grad()
    out = danie_s_64(torch.randn(2, 1, 64, 64))
    loss = build_loss([{"name": "dice", "output": "heads"}, {"name": "ce", "output": "heads"}])
    total, _ = loss(out, {"mask": torch.randint(0, 4, (2, 64, 64))})
    total.backward()
    for name in ("sap.stem.conv1.weight", "hap.embed.0.conv.weight", "hap.stages.0.w_max", "joint.0.es.gamma",
                 "heads.0.weight", "heads.3.weight"):
        grad = danie_s_64.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_danie_l_widths() -> None:
    model = dualseg.create_model("danie_l", in_channels=3, num_classes=2, img_size=32, pretrained=False)
    assert model.widths == [96, 192, 384, 768]


@pytest.mark.parametrize("in_channels", [1, 3])
def test_rgb_and_grey_inputs_and_head_weights(in_channels: int) -> None:
    torch.manual_seed(0)
    model = DANIE(in_channels, 3, img_size=64, encoder=PICO, head_weights=(1.0, 0.5, 0.0, 2.0)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_channels, 64, 64))
    p = out["heads"]
    torch.testing.assert_close(out["seg"], p[0] + 0.5 * p[1] + 2.0 * p[3])


@pytest.mark.parametrize(
    "options",
    [
        {"streams": "sap", "fusion": "add"},
        {"streams": "hap", "fusion": "add"},
        {"spatial_attention": False, "fusion": "add"},
        {"channel_attention": False, "fusion": "add"},
        {"attention_order": "spatial_first", "dynamic_calibration": False},
        {"fusion": "concat_res"},
        {"fusion": "eh_add"},
        {"fusion": "es_add"},
    ],
)
def test_ablation_variants_build_and_run(options: dict) -> None:
    model = pico(**options)
    assert (model.sap is None) == (options.get("streams") == "hap")
    assert (model.hap is None) == (options.get("streams") == "sap")
    with torch.no_grad():
        out = model(torch.randn(1, 1, 64, 64))
    assert out["seg"].shape == (1, 3, 64, 64) and len(out["heads"]) == 4


def test_variants_change_the_parameter_count() -> None:
    full = sum(p.numel() for p in pico().parameters())
    sap_only = sum(p.numel() for p in pico(streams="sap", fusion="add").parameters())
    add = sum(p.numel() for p in pico(fusion="add").parameters())
    assert sap_only < add < full


def test_input_size_errors() -> None:
    with pytest.raises(DualsegError, match="nearest valid sizes: 192 or 224"):
        dualseg.create_model("danie_s", in_channels=1, num_classes=4, img_size=200)
    model = pico()
    with pytest.raises(DualsegError, match="divisible by 64"):
        model(torch.randn(1, 1, 96, 96))
    with pytest.raises(DualsegError, match="input channel"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(DualsegError, match="fusion=add"):
        pico(streams="sap")
    with pytest.raises(DualsegError, match="no option 'fusoin'"):
        dualseg.create_model("danie_s", in_channels=1, num_classes=4, img_size=64, fusoin="add")


def test_pretrained_path_loads_a_timm_checkpoint_at_another_size(tmp_path) -> None:
    import timm

    torch.manual_seed(1)
    source = timm.create_model(PICO, img_size=128, num_classes=5)  # RGB, other windows, with a classifier
    path = tmp_path / "pico.pth"
    torch.save(source.state_dict(), path)
    model = DANIE(1, 3, img_size=64, encoder=PICO, pretrained_path=str(path))
    expected = source.state_dict()["stem.conv1.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.sap.state_dict()["stem.conv1.weight"], expected)
    own, src = model.sap.state_dict(), source.state_dict()
    tables = [k for k in own if k.endswith("relative_position_bias_table")]
    assert tables and all(own[k].shape != src[k].shape for k in tables)  # resized to the 64-px windows
    for k, v in own.items():
        if k != "stem.conv1.weight" and k not in tables:
            torch.testing.assert_close(v, src[k], msg=k)
    with pytest.raises(DualsegError, match="DANIE: pretrained_path"):
        DANIE(1, 3, img_size=64, encoder=PICO, pretrained_path=str(tmp_path / "missing.pth"))
