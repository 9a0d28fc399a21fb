"""Run a model on whole images of any size: pad to the model's divisor (or slide a window), undo resize and pad."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _pad_to(x: Tensor, divisor: int) -> tuple[Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def _seg(model: nn.Module, x: Tensor) -> Tensor:
    return model(x)["seg"]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    image: Tensor,
    *,
    roi_size: Sequence[int] | None = None,
    overlap: float = 0.5,
    resize: Sequence[int] | None = None,
    input_scale: float = 1.0,
    resize_mode: str = "bilinear",
) -> Tensor:
    """Segmentation logits ``(N, C, H, W)`` at the input's own size.

    ``resize``: the model was trained on images resized to (H, W); the input is resized the same way and the
    logits are resized back (bilinear). ``input_scale``: the model takes inputs scaled by this factor (0.5 for
    super-resolution methods trained on downsampled inputs, area interpolation); logits go back to full size.
    ``roi_size``: sliding-window inference with Gaussian blending (MONAI) instead of one whole-image pass;
    otherwise the image is zero-padded to the model's ``size_divisor``. ``resize_mode``: how the logits go back to
    the input's size, ``bilinear`` or ``nearest`` (then their argmax equals the nearest-neighbour resize of the label
    map, as TransUNet's order-0 zoom).
    """
    size = image.shape[-2:]
    x = F.interpolate(image, size=tuple(resize), mode="bilinear", align_corners=False) if resize else image
    if input_scale != 1.0:
        x = F.interpolate(x, scale_factor=input_scale, mode="area" if input_scale < 1 else "bilinear")
    x, unpadded = _pad_to(x, getattr(model, "size_divisor", 1))
    if roi_size is not None:
        from monai.inferers import sliding_window_inference

        logits = sliding_window_inference(
            x, tuple(roi_size), sw_batch_size=4, predictor=lambda t: _seg(model, t), overlap=overlap, mode="gaussian"
        )
    else:
        logits = _seg(model, x)
    # Crop the padding at the output's own resolution: SR methods predict at a multiple of the input size.
    ry, rx = logits.shape[-2] / x.shape[-2], logits.shape[-1] / x.shape[-1]
    logits = logits[..., : round(unpadded[0] * ry), : round(unpadded[1] * rx)]
    if tuple(logits.shape[-2:]) != tuple(size):
        align = {} if resize_mode == "nearest" else {"align_corners": False}
        logits = F.interpolate(logits, size=tuple(size), mode=resize_mode, **align)
    return logits
