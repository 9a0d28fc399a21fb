"""Whole-image prediction: padding to the model's divisor, resize / input scale, SR-resolution outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualseg.inference.predictor import predict_logits
from dualseg.inference.spec import InputSpec


class Echo(nn.Module):
    """Returns the input (times ``scale`` in size) as 2-class logits; checks the padded size is divisible."""

    size_divisor = 16

    def __init__(self, scale: int = 1) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0
        y = F.interpolate(x, scale_factor=self.scale, mode="nearest") if self.scale > 1 else x
        return {"seg": torch.cat([-y, y], dim=1)}


def test_padding_is_removed_exactly():
    x = torch.randn(1, 1, 37, 50)
    out = predict_logits(Echo(), x)
    assert out.shape == (1, 2, 37, 50) and torch.equal(out[:, 1:], x)


def test_sr_resolution_output_is_cropped_at_its_own_scale():
    x = torch.randn(1, 1, 40, 64)
    # model sees 20x32 -> pads to 32x32 -> predicts 64x64
    out = predict_logits(Echo(scale=2), x, InputSpec(input_scale=0.5))
    assert out.shape == (1, 2, 40, 64)
    expected = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(out[:, 1:], expected, atol=1e-6)


def test_resize_goes_back_to_the_input_size():
    out = predict_logits(Echo(), torch.randn(1, 1, 30, 45), InputSpec(resize=(32, 48)))
    assert out.shape == (1, 2, 30, 45)


def test_sliding_window_covering_the_image_equals_whole_image():
    x = torch.randn(1, 1, 48, 64)
    whole = predict_logits(Echo(), x)
    sliding = predict_logits(Echo(), x, InputSpec(roi_size=(48, 64), overlap=0.5))
    assert torch.allclose(whole, sliding, atol=1e-5)
