"""DRFL (Xu et al., EAAI 2023): variants, outputs, gradients, size rules and options (light preset, tiny inputs)."""

from __future__ import annotations

import pytest
import torch

import dualseg
from dualseg.errors import DualsegError
from dualseg.models.blocks.pfam import PeakinessFusionAttention
from dualseg.models.blocks.transformer import TransformerBlock
from dualseg.models.drfl import DRFL, VARIANTS

KEYS = {
    "ss": {"seg"},
    "ss_srs": {"seg", "sr"},
    "ss_srs_rftm": {"seg", "sr"},
    "dfm": {"seg", "seg_stream", "sr"},
    "dfm_rftm": {"seg", "seg_stream", "sr"},
    "drfl": {"seg", "seg_stream", "sr"},
    "drfl_cbam": {"seg", "seg_stream", "sr"},
}


def light(**kw: object) -> DRFL:
    kw.setdefault("variant", "drfl")
    return dualseg.create_model("drfl", in_channels=1, num_classes=1, preset="light", **kw)


def test_variant_table_is_covered() -> None:
    assert set(KEYS) == set(VARIANTS) and "drfl" in dualseg.list_models()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_keys_per_variant(variant: str) -> None:
    torch.manual_seed(0)
    model = light(variant=variant, img_size=64)
    x = torch.randn(1, 1, 64, 64)
    out = model.train()(x)  # batch 1 in training mode
    assert set(out) == KEYS[variant]
    assert out["seg"].shape == (1, 1, 64, 64)
    if "seg_stream" in out:
        assert out["seg_stream"].shape == (1, 1, 64, 64)
    if "sr" in out:
        assert out["sr"].shape == (1, 1, 128, 128)
    with torch.no_grad():
        assert set(model.eval()(x)) == KEYS[variant]  # eval returns the same products
    spec = VARIANTS[variant]
    assert (model.rftm is not None) == spec.rftm and (model.fusion is not None) == spec.fusion
    assert (model.sr_head is not None) == spec.sr
    has = {type(m).__name__ for m in model.modules()}
    assert ("PeakinessFusionAttention" in has) == (spec.attention == "pfam")
    assert ("CBAM" in has) == (spec.attention == "cbam")


def test_multiclass_rgb_and_code_options() -> None:
    model = dualseg.create_model(
        "drfl", in_channels=3, num_classes=3, preset="light", pfa_mode="code", learnable_qkv_weights=False
    )
    out = model(torch.randn(2, 3, 64, 96))
    assert out["seg"].shape == (2, 3, 64, 96) and out["seg_stream"].shape == (2, 3, 64, 96)
    assert out["sr"].shape == (2, 3, 128, 192)


def test_paper_preset_at_256() -> None:
    """One-RFTL reading (Sec. 4): each RFTL of Eq. 8 is one 768-d block; the Eq. 9 head sees no stem feature."""
    model = dualseg.create_model("drfl", in_channels=1, num_classes=1, variant="drfl", preset="paper").eval()
    n_params = sum(p.numel() for p in model.parameters())
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    n_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    # one self block (shared by F_seg and F_sr) + one cross block, 7.1 M each (+1.5 K for the context LayerNorm)
    assert len(blocks) == 2 and len(model.rftm.self_rftl.blocks) == len(model.rftm.cross_rftl.blocks) == 1
    assert 14.1e6 < n_blocks < 14.3e6
    assert 150e6 < n_params < 165e6
    assert model.size_divisor == 32 and model.rftm.self_rftl.grid == (8, 8)
    assert not model.stem_skip and model.seg_head.in_channels == 2 * 64  # Concat(H_fusion x F_sr, F_seg)
    with torch.no_grad():
        out = model(torch.randn(1, 1, 256, 256))
    assert out["seg"].shape == (1, 1, 256, 256) and out["sr"].shape == (1, 1, 512, 512)


def test_released_preset_sizes() -> None:
    """The authors' code (A2): 12 stacked blocks in each of the two transformers, e0 in the seg head."""
    model = dualseg.create_model("drfl", in_channels=1, num_classes=1, variant="drfl", preset="released")
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    n_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    # A2: 24 blocks of 768-d with MLP 3072 hold ~170 M; + patch embeddings and learned unpatchify (~25 M each),
    # a ~26 M-parameter encoder/decoder per stream -> ~314 M (~275 M with shared_decoder=True).
    assert len(blocks) == 24 and 165e6 < n_blocks < 175e6
    assert 290e6 < sum(p.numel() for p in model.parameters()) < 340e6
    assert model.stem_skip and model.seg_head.in_channels == 3 * 64


def test_gradients_reach_stem_and_weighted_attention() -> None:
    torch.manual_seed(0)
    model = light(img_size=64).train()
    out = model(torch.randn(1, 1, 64, 64))
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    assert model.stem[0].weight.grad.abs().sum() > 0
    for rftl in (model.rftm.self_rftl, model.rftm.cross_rftl):
        attn = rftl.blocks[0].attn
        for lin in (attn.q, attn.k, attn.v):
            assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
        for g in (attn.g_q, attn.g_k, attn.g_v):
            assert g.requires_grad and g.grad is not None and g.grad.abs() > 0
    assert model.sr_decoder.stages[0][1].weight.grad.abs().sum() > 0

    frozen = light(learnable_qkv_weights=False)
    gates = [p for n, p in frozen.named_parameters() if n.rsplit(".", 1)[-1] in ("g_q", "g_k", "g_v")]
    assert len(gates) == 3 * 2 * 2 and not any(g.requires_grad for g in gates)
    assert all(g.item() == pytest.approx(0.1) for g in gates)


def test_pos_embed_resampling_runs_at_other_sizes() -> None:
    model = light(img_size=64).eval()
    assert model.rftm.self_rftl.pos.shape == (1, 16, 96)  # (64 / 2 / 8)^2 tokens
    with torch.no_grad():
        out = model(torch.randn(1, 1, 128, 128))
        assert out["seg"].shape == (1, 1, 128, 128) and out["sr"].shape == (1, 1, 256, 256)
        assert model(torch.randn(1, 1, 64, 128))["seg"].shape == (1, 1, 64, 128)


def test_size_errors_name_the_nearest_valid_sizes() -> None:
    model = light(img_size=64)
    with pytest.raises(DualsegError, match="divisible by 32.*64 or 96"):
        model(torch.randn(1, 1, 80, 64))
    with pytest.raises(DualsegError, match="larger than 32x32"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(DualsegError, match="input channel"):
        model(torch.randn(1, 3, 64, 64))
    big_patch = light(rftm_patch=32, img_size=64)
    assert big_patch.size_divisor == 64
    with pytest.raises(DualsegError, match="divisible by 64.*64 or 128"):
        big_patch(torch.randn(1, 1, 96, 96))
    assert light(variant="dfm", rftm_patch=32, img_size=64).size_divisor == 32  # no RFTM: patch irrelevant
    with pytest.raises(DualsegError, match="img_size 100.*96 or 128"):
        light(img_size=100)


def test_shared_decoder_has_fewer_parameters() -> None:
    separate = light(img_size=64)
    shared = light(img_size=64, shared_decoder=True)
    assert shared.sr_decoder is None and separate.sr_decoder is not None
    n_sep = sum(p.numel() for p in separate.parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    assert n_sep - n_shared == sum(p.numel() for p in separate.sr_decoder.parameters())
    calls: list[torch.Tensor] = []
    shared.seg_decoder.register_forward_hook(lambda _m, _i, out: calls.append(out))
    with torch.no_grad():  # eval: one decoder called for both streams gives F_sr == F_seg (as in the release)
        assert set(shared.eval()(torch.randn(1, 1, 64, 64))) == KEYS["drfl"]
    assert len(calls) == 2
    torch.testing.assert_close(calls[0], calls[1])


def test_overrides_and_unknown_names() -> None:
    model = light(widths=(8, 16, 16, 32, 32), rftm_dim=32, rftm_depth=1, rftm_heads=2, fusion_width=8, img_size=64)
    assert model.widths == (8, 16, 16, 32, 32) and len(model.rftm.self_rftl.blocks) == 1
    assert model(torch.randn(1, 1, 64, 64))["seg"].shape == (1, 1, 64, 64)
    with pytest.raises(DualsegError, match="did you mean 'drfl_cbam'"):
        light(variant="drfl_cbm")
    with pytest.raises(DualsegError, match="did you mean 'light'"):
        dualseg.create_model("drfl", preset="lite")
    with pytest.raises(DualsegError) as err:
        dualseg.create_model("drfl", preset="paperr")
    assert "\n" not in str(err.value) and "choose one of paper, released, light" in str(err.value)
    with pytest.raises(DualsegError, match="no option 'rftm_dims'.*did you mean 'rftm_dim'"):
        light(rftm_dims=64)
    with pytest.raises(DualsegError, match="divisible by rftm_heads"):
        light(rftm_dim=30, rftm_heads=4)
    with pytest.raises(DualsegError, match="pfa_mode"):
        light(pfa_mode="both")
    with pytest.raises(DualsegError, match="did you mean 'code'"):
        light(variant="ss", pfa_mode="cod")
    with pytest.raises(DualsegError, match="dropout"):
        light(dropout=1.5)


def test_stem_skip_adds_e0_to_the_eq9_head() -> None:
    torch.manual_seed(0)
    paper_form = light(img_size=64, stem_skip=False)
    released_form = light(img_size=64)  # light keeps the measured layout: e0 in the head
    assert released_form.stem_skip and released_form.seg_head.in_channels == 3 * 16
    assert paper_form.seg_head.in_channels == 2 * 16 and paper_form.config["stem_skip"] is False
    seen: list[torch.Tensor] = []
    paper_form.seg_head.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
    with torch.no_grad():
        paper_form.eval()(torch.randn(1, 1, 64, 64))
    assert seen[0].shape == (1, 32, 32, 32)
    assert light(variant="ss", stem_skip=False).seg_head.in_channels == 2 * 16  # no RFTM: U-Net top skip kept


def test_code_fusion_module_layout_and_gradients() -> None:
    torch.manual_seed(0)
    model = light(img_size=64, fusion_mode="code").train()
    fm = model.fusion
    assert type(fm).__name__ == "CodeFusionModule" and len(fm.encoder) == 4 and len(fm.decoder.stages) == 4
    assert fm.sr_down[0].out_channels == 16 - 1 and fm.out.kernel_size == (3, 3) and fm.out.stride == (1, 1)
    assert sum(isinstance(m, PeakinessFusionAttention) for m in fm.modules()) == 8  # PFAM in each stage
    out = model(torch.randn(1, 1, 64, 64))
    assert out["seg"].shape == (1, 1, 64, 64)
    out["seg"].mean().backward()
    assert fm.sr_down[0].weight.grad.abs().sum() > 0 and model.stem[0].weight.grad.abs().sum() > 0
    assert light(variant="dfm", fusion_mode="code").fusion.encoder[0][0].attention.__class__.__name__ == "Identity"
    with pytest.raises(DualsegError, match="did you mean 'code'"):
        light(fusion_mode="cde")
    with pytest.raises(DualsegError, match="must exceed num_classes"):
        light(fusion_width=1, fusion_mode="code")
    with pytest.raises(DualsegError, match="pfa_pool"):
        light(variant="ss", pfa_pool="avg")
