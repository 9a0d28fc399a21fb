"""Sliding-window stitching, flip TTA and the SR output of dual-stream models at prediction time."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import dualseg
from dualseg.errors import DualsegError
from dualseg.inference.predictor import predict_outputs, predict_probabilities
from dualseg.inference.spec import InputSpec


class Pointwise(nn.Module):
    """A 1x1 convolution (each output pixel sees only its own input pixel), optionally upsampled x ``scale`` with
    nearest neighbours, plus a fake SR output: every window gives the same value at a pixel, whatever the tiling."""

    size_divisor = 8

    def __init__(self, num_classes: int = 3, scale: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, num_classes, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0
        up = F.interpolate(x, scale_factor=self.scale, mode="nearest") if self.scale > 1 else x
        return {"seg": self.conv(up), "sr": 2 * up}


def test_sliding_window_covering_the_image_equals_whole_image_for_real_models():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 96)
    for name in ("unet", "ds2f_unet"):
        model = dualseg.create_model(name, in_channels=1, num_classes=2, channels=(4, 8, 16)).eval()
        whole = predict_outputs(model, x)["seg"]
        sliding = predict_outputs(model, x, InputSpec(roi_size=(64, 96), overlap=0.5), sw_batch_size=1)["seg"]
        assert whole.shape == (2, 2, 64, 96) and torch.allclose(whole, sliding, atol=1e-5), name


@pytest.mark.parametrize("scale", [1, 2])
def test_overlapping_windows_stitch_back_exactly(scale):
    """Gaussian blending of windows that agree must give the whole-image result, at the SR scale too."""
    torch.manual_seed(0)
    model = Pointwise(scale=scale).eval()
    x = torch.randn(1, 1, 70, 101)  # padded to 72x104, then 3 x 4 windows of 32x48
    whole = predict_outputs(model, x, with_sr=True)
    sliding = predict_outputs(model, x, InputSpec(roi_size=(32, 48), overlap=0.25), with_sr=True, sw_device="cpu",
                              device="cpu")
    assert sliding["seg"].shape == (1, 3, 70, 101)
    assert sliding["sr"].shape == (1, 1, 70 * scale, 101 * scale)
    for key in ("seg", "sr"):
        assert torch.allclose(whole[key], sliding[key], atol=1e-5), key
    assert torch.allclose(sliding["sr"], 2 * F.interpolate(x, scale_factor=scale, mode="nearest"), atol=1e-5)


def test_window_size_must_fit_the_divisor():
    with pytest.raises(DualsegError, match="divisible by the model's size divisor 8"):
        predict_outputs(Pointwise().eval(), torch.randn(1, 1, 32, 32), InputSpec(roi_size=(30, 32)))


def test_tta_of_a_flip_equivariant_model_changes_nothing():
    torch.manual_seed(0)
    model = Pointwise(num_classes=1).eval()  # one sigmoid logit -> two probability channels
    x = torch.randn(2, 1, 40, 56)
    plain = predict_probabilities(model, x)["probs"]
    tta = predict_probabilities(model, x, tta=True)["probs"]
    assert plain.shape == tta.shape == (2, 2, 40, 56)
    assert torch.allclose(plain, tta, atol=1e-6)
    assert torch.allclose(plain[:, 1], torch.sigmoid(model.conv(x))[:, 0], atol=1e-6)


def test_tta_averages_the_probabilities_of_the_four_flips():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, 5, padding=2)  # an asymmetric kernel: not flip-equivariant

    class Asymmetric(nn.Module):
        def forward(self, x):
            return {"seg": conv(x)}

    x = torch.randn(1, 1, 24, 32)
    tta = predict_probabilities(Asymmetric(), x, tta=True)["probs"]
    with torch.no_grad():
        expected = sum(torch.softmax(conv(x.flip(d)), 1).flip(d) for d in [(), (-1,), (-2,), (-2, -1)]) / 4
        plain = torch.softmax(conv(x), 1)
    assert torch.allclose(tta, expected, atol=1e-6)
    assert not torch.allclose(tta, plain, atol=1e-3)
    assert torch.allclose(tta.sum(1), torch.ones(1, 24, 32), atol=1e-6)


def test_ds2f_predicts_its_sr_image_only_on_request():
    torch.manual_seed(0)
    model = dualseg.create_model("ds2f_unet", in_channels=1, num_classes=2, channels=(4, 8, 16)).eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        plain = model(x)
        both = model.predict_with_sr(x)
    assert set(plain) == {"seg"} and set(both) == {"seg", "sr"}
    assert torch.allclose(plain["seg"], both["seg"]) and both["sr"].shape == (1, 1, 64, 96)
    flops = []
    for call in (model, model.predict_with_sr):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            call(x)
        flops.append(counter.get_total_flops())
    assert flops[0] < flops[1]  # the eval forward skips the SR stream; predict_with_sr runs it
    out = predict_outputs(model, torch.randn(1, 1, 40, 40), InputSpec(input_scale=0.5), with_sr=True)
    assert out["seg"].shape == out["sr"].shape[:1] + (2, 40, 40) and out["sr"].shape == (1, 1, 40, 40)


def test_sr_request_on_a_model_without_sr_is_a_clear_error():
    unet = dualseg.create_model("unet", in_channels=1, num_classes=2, channels=(4, 8)).eval()
    with pytest.raises(DualsegError, match="no super-resolution output"):
        predict_outputs(unet, torch.randn(1, 1, 16, 16), with_sr=True)
    plain = dualseg.create_model("ds2f_unet", in_channels=1, num_classes=2, channels=(4, 8), sr_stream=False)
    with pytest.raises(DualsegError, match="sr_stream=False"):
        predict_outputs(plain.eval(), torch.randn(1, 1, 16, 16), with_sr=True)
