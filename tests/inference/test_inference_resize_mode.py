"""predict_logits(resize_mode="nearest"): the label map equals the nearest-neighbour resize of the model-size labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualseg.inference.predictor import predict_logits
from dualseg.inference.spec import InputSpec


class Noise(nn.Module):
    """Fixed random logits at whatever size it is given (3 classes)."""

    size_divisor = 1

    def forward(self, x: torch.Tensor) -> dict:
        g = torch.Generator().manual_seed(0)
        return {"seg": torch.randn(x.shape[0], 3, *x.shape[-2:], generator=g)}


def test_nearest_resize_back_equals_resized_label_map() -> None:
    image = torch.rand(1, 1, 37, 23)
    model = Noise()
    at_model_size = model(torch.zeros(1, 1, 16, 16))["seg"].argmax(1, keepdim=True).float()
    expected = F.interpolate(at_model_size, size=(37, 23), mode="nearest")[:, 0].long()
    labels = predict_logits(model, image, InputSpec(resize=(16, 16)), resize_mode="nearest").argmax(1)
    assert torch.equal(labels, expected)
    bilinear = predict_logits(model, image, InputSpec(resize=(16, 16))).argmax(1)
    assert not torch.equal(bilinear, expected)  # the default interpolates logits, giving other boundaries
