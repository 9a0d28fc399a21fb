"""Every registered baseline: output contract, gradients, deep supervision, input and option errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

import dualseg
from dualseg.errors import DualsegError
from dualseg.models.baselines import BASELINES

# small widths keep the tests fast on CPU; SIZE is a valid input size for each config
SMALL: dict[str, dict[str, Any]] = {
    "unet": {"channels": (8, 16, 32)},
    "attention_unet": {"channels": (8, 16, 32)},
    "unetpp": {"channels": (8, 16, 32)},
    "deeplabv3plus": {"encoder": "resnet18", "decoder_channels": 32},
}
SIZE = {"unet": 32, "attention_unet": 32, "unetpp": 32, "deeplabv3plus": 64}
DEEP_SUPERVISED = ["unet", "attention_unet", "unetpp"]


def build(name: str, in_channels: int = 1, num_classes: int = 2, **kw: Any) -> nn.Module:
    return dualseg.create_model(name, in_channels=in_channels, num_classes=num_classes, **{**SMALL[name], **kw})


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def test_every_baseline_is_registered_and_tested() -> None:
    assert set(BASELINES) <= set(dualseg.list_models())
    assert set(SMALL) == set(BASELINES)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("num_classes", [1, 4])
def test_output_shape(name: str, in_channels: int, num_classes: int) -> None:
    model = build(name, in_channels, num_classes).eval()
    s = SIZE[name]
    w = s + model.size_divisor  # non-square
    with torch.no_grad():
        out = model(torch.randn(1, in_channels, s, w))
    assert set(out) == {"seg"}
    assert out["seg"].shape == (1, num_classes, s, w)
    assert torch.isfinite(out["seg"]).all()


@pytest.mark.parametrize("name", BASELINES)
def test_gradients_reach_first_layer(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, in_channels=1, num_classes=1).train()
    s = SIZE[name]
    out = model(torch.randn(2, 1, s, s))
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    grad = first_conv(model).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused[:5]}"


@pytest.mark.parametrize("name", DEEP_SUPERVISED)
def test_deep_supervision(name: str) -> None:
    model = build(name, num_classes=3, channels=(4, 8, 16, 32), deep_supervision=True)
    x = torch.randn(2, 1, 32, 32)
    out = model.train()(x)
    assert set(out) == {"seg", "aux_1", "aux_2"}
    assert all(v.shape == (2, 3, 32, 32) for v in out.values())
    sum(v.mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert set(model.eval()(x)) == {"seg"}
    assert set(build(name, channels=(4, 8, 16, 32)).train()(x)) == {"seg"}


@pytest.mark.parametrize("name", DEEP_SUPERVISED)
def test_deep_supervision_needs_depth_two(name: str) -> None:
    with pytest.raises(DualsegError, match="deep_supervision"):
        build(name, channels=(8, 16), deep_supervision=True)


@pytest.mark.parametrize("name", BASELINES)
def test_wrong_channel_count(name: str) -> None:
    model = build(name, in_channels=1).eval()
    s = SIZE[name]
    with pytest.raises(DualsegError, match="1 input channel"):
        model(torch.randn(1, 3, s, s))


@pytest.mark.parametrize("name", BASELINES)
def test_non_divisible_size_names_nearest_valid(name: str) -> None:
    model = build(name).eval()
    d, s = model.size_divisor, SIZE[name]
    h = s - 2
    low, high = (h // d) * d, (h // d + 1) * d
    with pytest.raises(DualsegError, match=f"divisible by {d}.*{low} or {high}x{low} or {high}"):
        model(torch.randn(1, 1, h, h))


def test_unknown_option_suggests_name() -> None:
    with pytest.raises(DualsegError, match="did you mean 'channels'"):
        dualseg.create_model("unet", channels=(8, 16, 32), chanels=(8, 16))


def test_unknown_model_name() -> None:
    with pytest.raises(DualsegError, match="did you mean 'unet'"):
        dualseg.create_model("unte")


@pytest.mark.parametrize("channels", [(8, 16), (8, 16, 32), (4, 8, 16, 32), (4, 8, 8, 16, 16)])
def test_unet_depth_follows_channels(channels: tuple[int, ...]) -> None:
    model = build("unet", channels=channels)
    depth = len(channels) - 1
    assert model.depth == depth
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == depth
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules()) == depth
    assert model.size_divisor == 2**depth
    s = 2 * model.size_divisor
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, s, s))["seg"].shape == (1, 2, s, s)


@pytest.mark.parametrize("name", ["unet", "attention_unet", "unetpp"])
@pytest.mark.parametrize(("norm", "up_mode"), [("instance", "bilinear"), ("group", "transpose"), (None, "bilinear")])
def test_unet_family_options(name: str, norm: str | None, up_mode: str) -> None:
    model = build(name, norm=norm, up_mode=up_mode).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16, 16))["seg"].shape == (1, 2, 16, 16)


def test_unet_dropout_and_attention_gates() -> None:
    model = build("unet", dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules())
    from dualseg.models.blocks import AttentionGate

    assert sum(isinstance(m, AttentionGate) for m in build("attention_unet").modules()) == 2
    assert not any(isinstance(m, AttentionGate) for m in build("unet").modules())


@pytest.mark.parametrize(
    ("name", "kw", "pattern"),
    [
        ("unet", {"channels": (8,)}, "at least 2"),
        ("unet", {"channels": 32}, "list of widths"),
        ("unet", {"up_mode": "bilinar"}, "did you mean 'bilinear'"),
        ("unet", {"norm": "btach"}, "did you mean 'batch'"),
        ("unet", {"dropout": 1.5}, "dropout"),
        ("unetpp", {"up_mode": "nearest"}, "up_mode"),
        ("deeplabv3plus", {"output_stride": 32}, "8 or 16"),
        ("deeplabv3plus", {"encoder": "resnet1B"}, "did you mean 'resnet18'"),
    ],
)
def test_bad_options(name: str, kw: dict[str, Any], pattern: str) -> None:
    with pytest.raises(DualsegError, match=pattern):
        build(name, **kw)


def test_deeplabv3plus_output_stride_8() -> None:
    model = build("deeplabv3plus", output_stride=8, aspp_rates=(2, 4, 6)).eval()
    assert model.size_divisor == 8
    with torch.no_grad():
        assert model(torch.randn(1, 1, 24, 32))["seg"].shape == (1, 2, 24, 32)


def test_deeplabv3plus_batch_of_one_in_training() -> None:
    model = build("deeplabv3plus").train()
    with pytest.raises(DualsegError, match="batch"):
        model(torch.randn(1, 1, 32, 32))
