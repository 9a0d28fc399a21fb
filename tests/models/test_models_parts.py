"""Models from parts: the option checks, the timm-style entry functions, the encoder -> decoder -> head flow, and
DS2F on a backbone made only from a baseline's encoder and decoder."""

from __future__ import annotations

import inspect

import pytest
import torch

import dualseg
from dualseg.errors import DualsegError
from dualseg.models.baselines.unet import UNet, UNetDecoder, UNetEncoder
from dualseg.models.blocks.conv import init_weights
from dualseg.models.builder import build_variant, variant_of
from dualseg.models.ds2f import DS2F, EncoderDecoderBackbone, FinalFeatures
from dualseg.models.encoder_decoder import to_size
from dualseg.models.options import check_choice, check_positive_int, check_positive_ints


def test_option_checks_return_the_value_or_name_the_fix() -> None:
    assert check_choice("gate", "rcab", ("mrcab", "rcab")) == "rcab"
    with pytest.raises(DualsegError, match=r"^DS2F: unknown gate 'rcb' \(did you mean 'rcab'\?\); choose one of"):
        check_choice("gate", "rcb", ("mrcab", "rcab"), "DS2F")
    assert check_positive_int("hidden", 3) == 3
    for bad in (0, -1, True, 2.0, "2"):
        with pytest.raises(DualsegError, match="hidden must be a positive integer"):
            check_positive_int("hidden", bad)
    assert check_positive_ints("widths", [4, 8], 2) == (4, 8)
    with pytest.raises(DualsegError, match="widths must be two positive integers"):
        check_positive_ints("widths", (4, 0), 2)


def test_entry_function_takes_the_options_minus_its_preset() -> None:
    def model(in_channels: int = 1, depth: int = 2, wide: bool = False) -> tuple[int, int, bool]:
        return in_channels, depth, wide

    @variant_of(model, fixed={"wide": True})
    def wide_model(**options: object) -> tuple[int, int, bool]:
        return build_variant(model, {"wide": True}, options)

    assert list(inspect.signature(wide_model).parameters) == ["in_channels", "depth"]
    assert wide_model(depth=5) == (1, 5, True)


def test_registry_checks_entry_function_options() -> None:
    with pytest.raises(DualsegError, match=r"model 'attention_unet' has no option 'attention'"):
        dualseg.create_model("attention_unet", attention=False)
    with pytest.raises(DualsegError, match=r"model 'danie_s' has no option 'img_sise' \(did you mean 'img_size'"):
        dualseg.create_model("danie_s", img_sise=64)
    with pytest.raises(DualsegError, match="has no option 'channels'"):
        dualseg.create_model("ds2f_deeplabv3plus", channels=(8, 16))


def test_attention_unet_is_unet_with_gates() -> None:
    plain = dualseg.create_model("unet", channels=(4, 8))
    gated = dualseg.create_model("attention_unet", channels=(4, 8))
    assert isinstance(plain, UNet) and isinstance(gated, UNet)
    assert plain.decoder[0].gate is None and gated.decoder[0].gate is not None


def test_decoder_returns_features_finest_first_and_head_upsamples() -> None:
    encoder, decoder = UNetEncoder(1, (4, 8, 16)), UNetDecoder((4, 8, 16), "batch", "transpose")
    levels = decoder(encoder(torch.randn(2, 1, 16, 16)))
    assert [tuple(f.shape) for f in levels] == [(2, 4, 16, 16), (2, 8, 8, 8)]
    x = torch.arange(4.0).view(1, 1, 2, 2)
    assert to_size(x, x.shape[-2:]) is x
    # bilinear, align_corners=False: a 2x2 -> 4x4 resize gives 0.75*a + 0.25*b between neighbours a, b
    assert to_size(x, torch.Size((4, 4)))[0, 0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]


def test_deep_supervision_heads_read_their_levels() -> None:
    model = dualseg.create_model("unet", channels=(4, 8, 16), deep_supervision=True).train()
    x = torch.randn(2, 1, 16, 16)
    out = model(x)
    levels = model.decoder(model.encode(x))
    expected = torch.nn.functional.interpolate(model.aux_heads[0](levels[1]), size=(16, 16), mode="bilinear")
    torch.testing.assert_close(out["aux_1"], expected)
    torch.testing.assert_close(out["seg"], model.head(levels[0]))


def test_ds2f_on_a_backbone_built_from_a_baselines_parts() -> None:
    """Attention U-Net has no DS2F entry: its encoder and decoder are enough."""
    chans = (4, 8, 16)

    def make_decoder() -> FinalFeatures:
        return FinalFeatures(init_weights(UNetDecoder(chans, "batch", "transpose", attention=True)))

    backbone = EncoderDecoderBackbone(init_weights(UNetEncoder(1, chans)), make_decoder, 4, 4, chans)
    model = DS2F(backbone, in_channels=1, num_classes=2, upscale=2, hidden=8)
    out = model.train()(torch.randn(2, 1, 16, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "seg": (2, 2, 32, 32), "sr": (2, 1, 32, 32), "proxy_seg": (2, 2, 32, 32), "proxy_sr": (2, 1, 32, 32)
    }
    assert model.seg_decoder.stages[0].gate is not None and model.sr_decoder is not model.seg_decoder
