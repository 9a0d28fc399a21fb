"""DS2F (Qiu et al., TPAMI 2023): outputs per option, eval cost = plain backbone, proxy path, errors (tiny sizes)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

import dualseg
from dualseg.benchmark import count_flops
from dualseg.errors import DualsegError
from dualseg.models.blocks import ConvNormAct, UpConv
from dualseg.models.blocks.ds2f import CONTEXTS, FIM, GATES, MAF, MultiScaleCrossGate
from dualseg.models.ds2f import DS2F, SFEMS, DS2FBackbone

TINY = {"channels": (8, 16, 32), "hidden": 8, "sr_head_channels": (8, 8)}
KEYS = {
    "mscg": {"seg", "sr", "proxy_seg", "proxy_sr"},
    "maf": {"seg", "sr", "proxy_seg", "proxy_sr"},
    "fim": {"seg", "sr", "proxy_seg"},
    "none": {"seg", "sr"},
}


def tiny_unet(**kw: object) -> DS2F:
    return dualseg.create_model("ds2f_unet", in_channels=kw.pop("in_channels", 3), num_classes=2, **{**TINY, **kw})


def tiny_deeplab(**kw: object) -> DS2F:
    args = {"encoder": "resnet18", "decoder_channels": 16, "hidden": 8, "aspp_dropout": 0.0, "sr_head_channels": (8, 8)}
    return dualseg.create_model("ds2f_deeplabv3plus", in_channels=3, num_classes=3, **{**args, **kw})


def test_registered_interface_at_default_widths() -> None:
    torch.manual_seed(0)
    assert {"ds2f_unet", "ds2f_deeplabv3plus"} <= set(dualseg.list_models())
    model = dualseg.create_model("ds2f_unet", in_channels=3, num_classes=2, upscale=2)
    assert model.backbone.channels == (64, 128, 256, 512, 1024) and model.size_divisor == 16
    x = torch.randn(1, 3, 128, 128)  # batch 1 in training mode
    with torch.no_grad():
        out = model.train()(x)
        assert set(out) == KEYS["mscg"]
        assert out["seg"].shape == out["proxy_seg"].shape == (1, 2, 256, 256)
        assert out["sr"].shape == out["proxy_sr"].shape == (1, 3, 256, 256)
        ev = model.eval()(x)
    assert set(ev) == {"seg"} and ev["seg"].shape == (1, 2, 256, 256)


@pytest.mark.parametrize(("sfem", "upscale"), list(itertools.product(SFEMS, (2, 4))))
def test_unet_outputs_per_sfem_and_upscale(sfem: str, upscale: int) -> None:
    torch.manual_seed(0)
    model = tiny_unet(sfem=sfem, upscale=upscale)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert set(out) == KEYS[sfem]
    hr = 32 * upscale
    for key, tensor in out.items():
        assert tensor.shape == ((2, 3, hr, hr) if key.endswith("sr") else (2, 2, hr, hr)), key
    kinds = {"mscg": MultiScaleCrossGate, "maf": MAF, "fim": FIM, "none": type(None)}
    assert isinstance(model.sfem, kinds[sfem])
    with torch.no_grad():
        ev = model.eval()(x)
    assert set(ev) == {"seg"} and ev["seg"].shape == (2, 2, hr, hr)


@pytest.mark.parametrize(("gate", "context"), list(itertools.product(GATES, CONTEXTS)))
def test_unet_every_gate_and_context(gate: str, context: str) -> None:
    torch.manual_seed(0)
    model = tiny_unet(gate=gate, context=context)
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert out["proxy_seg"].shape == (2, 2, 64, 64) and out["proxy_sr"].shape == (2, 3, 64, 64)


@pytest.mark.parametrize("up_mode", ["bilinear_1x1", "transpose", "bilinear"])
def test_unet_up_modes_and_msconv_options(up_mode: str) -> None:
    model = tiny_unet(up_mode=up_mode, msconv_branches=("dilated",), msconv_groups=2, hidden=8)
    out = model.train()(torch.randn(1, 3, 32, 32))
    assert out["proxy_sr"].shape == (1, 3, 64, 64)
    assert model.sfem.gate.context.kinds == ("dw_substitute", "dw_substitute")
    up = model.seg_decoder.stages[0].up
    assert isinstance(up, UpConv) and up.mode == ("transpose" if up_mode == "transpose" else "bilinear")
    if up_mode == "bilinear_1x1":
        assert up.post.conv.kernel_size == (1, 1) and isinstance(up.post.norm, nn.BatchNorm2d)
    pools = [stage[0] for stage in model.backbone.encoder.stages[1:]]
    assert all(p.kernel_size == 3 and p.stride == 2 and p.padding == 1 for p in pools)


def test_eval_flops_equal_plain_backbone() -> None:
    x = torch.randn(1, 3, 64, 64)
    full = dualseg.create_model("ds2f_unet", in_channels=3, num_classes=2, upscale=2)
    plain = dualseg.create_model("ds2f_unet", in_channels=3, num_classes=2, upscale=2, sr_stream=False)
    eval_full, eval_plain = count_flops(full, x), count_flops(plain, x)
    assert eval_full == eval_plain > 0
    assert count_flops(plain, x, train=True) == eval_plain  # no SR parts at all
    assert count_flops(full, x, train=True) > 2 * eval_plain - count_flops(plain.backbone.encoder, x)
    assert sum(p.numel() for p in full.parameters()) > sum(p.numel() for p in plain.parameters())
    # same U-Net as the baseline (transposed up-convolutions): same eval cost
    unet = dualseg.create_model("unet", in_channels=3, num_classes=2, channels=(8, 16, 32))
    mine = tiny_unet(up_mode="transpose")
    assert count_flops(mine, x) == count_flops(unet, x)


def test_deeplab_eval_flops_equal_plain_and_baseline() -> None:
    x = torch.randn(1, 3, 64, 64)
    full, plain = tiny_deeplab(), tiny_deeplab(sr_stream=False)
    base = dualseg.create_model("deeplabv3plus", in_channels=3, num_classes=3, encoder="resnet18", decoder_channels=16)
    assert count_flops(full, x) == count_flops(plain, x) == count_flops(base, x)


def _grad_norm(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("sfem", ["mscg", "maf"])
def test_proxy_outputs_differ_and_cross_gradients(sfem: str) -> None:
    torch.manual_seed(0)
    model = tiny_unet(sfem=sfem).train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert not torch.allclose(out["proxy_seg"], out["seg"]) and not torch.allclose(out["proxy_sr"], out["sr"])
    out["proxy_seg"].square().mean().backward(retain_graph=True)
    assert _grad_norm(model.sr_decoder) > 0 and _grad_norm(model.seg_decoder) > 0  # proxy seg reaches SR stream
    assert _grad_norm(model.sr_head) == 0
    model.zero_grad()
    out["proxy_sr"].square().mean().backward()
    assert _grad_norm(model.seg_decoder) > 0 and _grad_norm(model.sr_decoder) > 0
    assert _grad_norm(model.seg_head) == 0


def test_heads_are_shared_no_proxy_parameters() -> None:
    names = {n.split(".")[0] for n, _ in tiny_unet().named_parameters()}
    assert names == {"backbone", "seg_decoder", "sr_decoder", "seg_head", "sr_head", "sfem"}
    assert tiny_unet(sfem="none").sfem is None and tiny_unet(sr_stream=False).sr_decoder is None


def _perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


@pytest.mark.parametrize("builder", [tiny_unet, tiny_deeplab])
def test_proxy_seg_uses_the_fused_feature(builder: Callable[[], DS2F]) -> None:
    """The released DeepLabV3+ recomputed proxy_seg from the unfused feature; here the SR stream must matter."""
    torch.manual_seed(0)
    model = builder().train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        _perturb(model.sr_decoder)
        after = model(x)
    torch.testing.assert_close(after["seg"], before["seg"])
    assert not torch.allclose(after["proxy_seg"], before["proxy_seg"])
    assert not torch.allclose(after["sr"], before["sr"])


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_shapes(output_stride: int) -> None:
    torch.manual_seed(0)
    model = tiny_deeplab(output_stride=output_stride, upscale=4)
    assert model.size_divisor == output_stride and model.backbone.decoder_channels == 16
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert set(out) == KEYS["mscg"]
    assert out["seg"].shape == out["proxy_seg"].shape == (2, 3, 128, 128)
    assert out["sr"].shape == out["proxy_sr"].shape == (2, 3, 128, 128)
    with torch.no_grad():
        assert set(model.eval()(x)) == {"seg"}


class TinyBackbone(DS2FBackbone):
    """The docstring's example: decoder output at half the input resolution."""

    size_divisor = 4
    decoder_channels = 16

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(ConvNormAct(in_ch, 16, stride=2), ConvNormAct(16, 32, stride=2))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def make_decoder(self) -> nn.Module:
        return nn.Sequential(UpConv(32, 16, mode="bilinear", norm="batch", act="relu"))


def test_wrapping_your_own_backbone() -> None:
    model = DS2F(TinyBackbone(3), in_channels=3, num_classes=2, upscale=4, hidden=8)
    out = model.train()(torch.randn(2, 3, 16, 16))
    assert out["seg"].shape == (2, 2, 64, 64) and out["proxy_sr"].shape == (2, 3, 64, 64)
    with pytest.raises(DualsegError, match="divisible by 4"):
        model(torch.randn(2, 3, 18, 18))

    class Shared(TinyBackbone):
        def __init__(self, in_ch: int) -> None:
            super().__init__(in_ch)
            self.dec = super().make_decoder()

        def make_decoder(self) -> nn.Module:
            return self.dec

    with pytest.raises(DualsegError, match="new decoder"):
        DS2F(Shared(3), in_channels=3)
    with pytest.raises(DualsegError, match="encode"):
        DS2F(nn.Conv2d(3, 3, 1), in_channels=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"foo": 1}, "has no option 'foo'"),
        ({"sfem": "mscq"}, "did you mean 'mscg'"),
        ({"gate": "rcb"}, "unknown gate"),
        ({"context": "asp"}, "did you mean 'aspp'"),
        ({"upscale": 1}, "upscale must be an integer >= 2"),
        ({"upscale": 2.0}, "upscale must be an integer >= 2"),
        ({"sr_stream": False, "sfem": "mscg"}, "needs the SR stream"),
        ({"hidden": 10}, "equal groups"),
        ({"up_mode": "nearest"}, "unknown up_mode"),
        ({"channels": (8,)}, "at least 2"),
        ({"sr_head_channels": (8,)}, "two positive integers"),
        ({"msconv_branches": ("conv3x3",)}, "unknown MSConv branch"),
    ],
)
def test_option_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(DualsegError, match=match):
        dualseg.create_model("ds2f_unet", in_channels=3, num_classes=2, **{**TINY, **kwargs})


def test_deeplab_option_errors() -> None:
    with pytest.raises(DualsegError, match="output_stride"):
        tiny_deeplab(output_stride=4)
    with pytest.raises(DualsegError, match="has no option 'channels'"):
        tiny_deeplab(channels=(8, 16))
