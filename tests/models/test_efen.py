"""EFEN: Box 1 positional encoding against hand values, the cross-attention skip (Eq. 5-9) against an explicit
computation, the Table 1 variants' shapes and gradients, size errors and VGG-19 weight loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dualseg import create_model
from dualseg.errors import DualsegError
from dualseg.models.blocks.positional_skip import (
    PositionalCrossAttentionSkip,
    add_positional_encoding,
    sinusoidal_positional_encoding,
    tokens,
)
from dualseg.models.efen import VARIANTS, VGG19Encoder


def test_positional_encoding_box1_hand_values() -> None:
    # d_model = 4: frequencies exp(-0 * ln(1e4) / 4) = 1 and exp(-2 * ln(1e4) / 4) = 0.01
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],
            [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004],
            [0.9092974268, -0.4161468365, 0.0199986667, 0.9998000067],
        ]
    )
    torch.testing.assert_close(sinusoidal_positional_encoding(3, 4), expected, atol=1e-6, rtol=0)


def test_positional_encoding_odd_width() -> None:
    # d_model = 3: columns sin(p), cos(p), sin(p * 1e4 ** (-2/3))
    pe = sinusoidal_positional_encoding(2, 3)
    w1 = 10000.0 ** (-2 / 3)
    torch.testing.assert_close(pe[1], torch.tensor([math.sin(1), math.cos(1), math.sin(w1)]), atol=1e-6, rtol=0)


def test_positional_encoding_is_row_major_over_pixels() -> None:
    x = torch.zeros(1, 4, 2, 3)
    out = add_positional_encoding(x)
    pe = sinusoidal_positional_encoding(6, 4)
    # pixel (row 1, col 2) is sequence position 5
    torch.testing.assert_close(out[0, :, 1, 2], pe[5])
    torch.testing.assert_close(out[0, :, 0, 1], pe[1])


def make_skip(dec_scale: int = 2) -> PositionalCrossAttentionSkip:
    torch.manual_seed(0)
    return PositionalCrossAttentionSkip(enc_ch=6, dec_ch=10, out_ch=5, attn_dim=4, dec_scale=dec_scale).eval()


def test_attention_rows_sum_to_one() -> None:
    skip = make_skip()
    a = skip.attention_weights(torch.randn(2, 10, 4, 6))
    assert a.shape == (2, 24, 24)
    assert bool((a >= 0).all())
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 24))


def test_skip_matches_explicit_attention_with_scale_one_over_dk() -> None:
    """The fused-kernel forward equals concat(F_E' * op2(A V), op3(F_D')) with A built explicitly (1/d_k)."""
    skip = make_skip()
    f_e, f_d = torch.randn(2, 6, 8, 12), torch.randn(2, 10, 4, 6)
    with torch.no_grad():
        out = skip(f_e, f_d)
        f_e2, f_d2 = add_positional_encoding(f_e), add_positional_encoding(f_d)
        q = skip.w_q(f_d2).flatten(2).transpose(1, 2)
        k = skip.w_k(f_d2).flatten(2).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(1, 2) / 4, dim=-1)  # d_k = 4, not sqrt(4)
        torch.testing.assert_close(a, skip.attention_weights(f_d))
        v_map = skip.w_v(skip.op1(f_e2))
        av = (a @ tokens(v_map)[:, 0]).transpose(1, 2).reshape(v_map.shape)
        expected = torch.cat([f_e2 * skip.op2(av), skip.op3(f_d2)], dim=1)
    assert out.shape == (2, 6 + 5, 8, 12)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_skip_same_resolution_decoder_and_size_check() -> None:
    skip = make_skip(dec_scale=1)
    assert skip(torch.randn(1, 6, 8, 12), torch.randn(1, 10, 8, 12)).shape == (1, 11, 8, 12)
    assert skip.attention_weights(torch.randn(1, 10, 8, 12)).shape == (1, 24, 24)
    with pytest.raises(DualsegError, match="decoder feature of 8x12"):
        skip(torch.randn(1, 6, 8, 12), torch.randn(1, 10, 4, 6))


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_shapes_and_gradients(variant: str) -> None:
    torch.manual_seed(0)
    model = create_model("efen", in_channels=3, num_classes=1, variant=variant, pretrained=False)
    x = torch.randn(2, 3, 32, 48)
    out = model(x)
    assert set(out) == {"seg"}
    assert out["seg"].shape == (2, 1, 32, 48)
    out["seg"].square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:5]}"
    assert (model.encoder2 is None) == (variant == "unet")
    assert (model.input_skip is not None) == (variant == "efen")


def test_improved_skips_add_parameters_in_the_order_of_table1() -> None:
    counts = [sum(p.numel() for p in create_model("efen", 3, 1, variant=v).parameters()) for v in VARIANTS]
    assert counts[0] < counts[1] < counts[2]
    assert counts[0] > 20_000_000  # the VGG-19 convolutions alone hold 20.02 M


def test_size_and_option_errors() -> None:
    model = create_model("efen", in_channels=3, num_classes=1, variant="unet")
    with pytest.raises(DualsegError, match="divisible by 16"):
        model(torch.randn(1, 3, 40, 48))
    with pytest.raises(DualsegError, match="unknown variant"):
        create_model("efen", 3, 1, variant="unet_procces1")
    with pytest.raises(DualsegError, match="decoder_channels"):
        create_model("efen", 3, 1, decoder_channels=(64, 32))
    with pytest.raises(DualsegError, match="attn_dim"):
        create_model("efen", 3, 1, attn_dim=0)


def test_vgg_weights_file_torchvision_names_and_one_channel(tmp_path: Path) -> None:
    source = VGG19Encoder(3)
    state = {k: torch.randn_like(v) for k, v in source.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision's classifier: dropped
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    model = create_model("efen", in_channels=1, num_classes=1, variant="unet", pretrained_path=str(path))
    enc = model.encoder.state_dict()
    torch.testing.assert_close(enc["features.34.weight"], state["features.34.weight"])
    torch.testing.assert_close(enc["features.0.weight"], state["features.0.weight"].sum(1, keepdim=True))
    with pytest.raises(DualsegError, match="does not exist"):
        create_model("efen", 3, 1, pretrained_path=str(tmp_path / "missing.pth"))
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(DualsegError, match="missing key"):
        create_model("efen", 3, 1, pretrained_path=str(tmp_path / "partial.pth"))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_skip_attention_never_takes_the_quadratic_memory_math_path(memory_format: torch.memory_format) -> None:
    """The fused kernel must be used (the math fallback materialises the N x N matrix), for NCHW features and
    for channels-last ones as the trainer produces them."""
    skip = make_skip()
    f_e = torch.randn(1, 6, 8, 12).to(memory_format=memory_format)
    f_d = torch.randn(1, 10, 4, 6).to(memory_format=memory_format)
    with torch.profiler.profile() as prof:
        skip(f_e, f_d)
    names = {event.key for event in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" in names
    assert "aten::_scaled_dot_product_attention_math" not in names


def test_vgg_weights_from_a_whole_efen_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_model("efen", in_channels=3, num_classes=1, variant="unet")
    torch.save(source.state_dict(), tmp_path / "efen.pth")
    model = create_model(
        "efen", in_channels=3, num_classes=1, variant="unet", pretrained_path=str(tmp_path / "efen.pth")
    )
    torch.testing.assert_close(model.encoder.state_dict(), source.encoder.state_dict())
    assert not torch.equal(model.head.weight, source.head.weight)  # only the encoder is loaded


def test_attention_runs_in_float32_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Q and K come from un-normalised features; in an lr-0.01 efen run the scores of the deepest skip reached
    ~2e9 by step 4 and PyTorch's bf16 CPU flash-attention backward returned NaN there, while the float32 kernel
    gave finite gradients on the same saved tensors. So the attention itself runs in float32."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    skip = make_skip().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = skip(torch.randn(2, 6, 8, 12), torch.randn(2, 10, 4, 6))
    assert seen == [(torch.float32,) * 3]
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in skip.parameters() if p.grad is not None)


def test_initialisation_small_logits_and_xavier_projections() -> None:
    torch.manual_seed(0)
    model = create_model("efen", in_channels=3, num_classes=1, variant="efen").train()  # as the first step sees it
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 48))["seg"]
    assert logits.std() < 1.0  # Kaiming fan-out on a 1-class head gave std ~5 and a first gradient norm of ~350
    skip = model.input_skip
    for projection in (skip.w_q, skip.w_k, skip.w_v):
        bound = math.sqrt(6 / (projection.in_channels + projection.out_channels))  # Xavier-uniform
        assert projection.weight.abs().max() <= bound
        assert not projection.bias.any()
