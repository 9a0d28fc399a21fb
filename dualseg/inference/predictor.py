"""Run a model on whole images of any size: pad to the model's divisor (or slide a window), undo resize and pad;
flip test-time augmentation (TTA) over class probabilities; the SR image of dual-stream models on request."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualseg.data.sr_pairs import downsample
from dualseg.errors import DualsegError
from dualseg.inference.spec import DEFAULT_SPEC, InputSpec

FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))  # identity, horizontal, vertical, both


def _pad_to(x: Tensor, divisor: int) -> tuple[Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def _forward(model: nn.Module, x: Tensor, with_sr: bool) -> dict[str, Tensor]:
    """``{"seg"}`` (and ``"sr"``) in float32, so that windows are blended in full precision under autocast.

    With ``with_sr`` a model's ``predict_with_sr(x)`` is used when it has one (DS2F, whose eval-mode ``forward``
    skips the SR stream), else its ordinary outputs (DRFL returns ``"sr"`` in eval mode too).
    """
    if not with_sr:
        return {"seg": model(x)["seg"].float()}
    out = model.predict_with_sr(x) if hasattr(model, "predict_with_sr") else model(x)
    if "sr" not in out:
        raise DualsegError(
            f"{type(model).__name__} has no super-resolution output in eval mode (this variant has no SR stream); "
            "predict without SR images"
        )
    return {"seg": out["seg"].float(), "sr": out["sr"].float()}


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    image: Tensor,
    spec: InputSpec = DEFAULT_SPEC,
    *,
    sw_batch_size: int = 4,
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    with_sr: bool = False,
    resize_mode: str = "bilinear",
) -> dict[str, Tensor]:
    """``{"seg": logits (N, C, H, W)}`` at the input's own size, plus ``"sr"`` (the SR image at the model's output
    scale, ``upscale * input_scale`` times the input size) with ``with_sr``.

    From ``spec``: ``resize``: the model was trained on images resized to (H, W); the input is resized the same
    way and the logits are resized back (bilinear). ``input_scale``: the model takes inputs scaled by this factor
    (0.5 for super-resolution methods trained on downsampled inputs) and is made with ``input_mode`` (``area``,
    ``bicubic`` or ``bilinear``: ``data.sr.interpolation``, see ``dualseg.data.sr_pairs.downsample``); logits go
    back to full size. ``roi_size``: sliding-window inference with Gaussian blending (MONAI's
    ``sliding_window_inference``; ``overlap`` between windows, ``sw_batch_size`` windows per forward pass, run on
    ``sw_device`` and stitched on ``device``, e.g. windows on the GPU and the full-size output in CPU memory);
    otherwise one whole-image pass, the image zero-padded to the model's ``size_divisor``. Normalisation,
    precision and memory layout are the caller's (the input arrives normalised, under its autocast).
    ``resize_mode``: how the logits go back to the input's size, ``bilinear`` or ``nearest`` (then their argmax
    equals the nearest-neighbour resize of the label map, as TransUNet's order-0 zoom); SR images always go back
    bilinearly.
    """
    if resize_mode not in ("bilinear", "nearest"):
        raise DualsegError(f"resize_mode must be 'bilinear' or 'nearest', got {resize_mode!r}")
    size = image.shape[-2:]
    resize, input_scale, roi_size, overlap = spec.resize, spec.input_scale, spec.roi_size, spec.overlap
    x = F.interpolate(image, size=tuple(resize), mode="bilinear", align_corners=False) if resize else image
    if input_scale < 1.0:
        x = downsample(x, round(1 / input_scale), spec.input_mode)
    elif input_scale != 1.0:
        x = F.interpolate(x, scale_factor=input_scale, mode="bilinear")
    divisor = getattr(model, "size_divisor", 1)
    x, unpadded = _pad_to(x, divisor)
    if roi_size is not None:
        from monai.inferers import sliding_window_inference

        roi = tuple(int(r) for r in roi_size)
        if len(roi) != 2 or any(r < 1 or r % divisor for r in roi):
            raise DualsegError(
                f"roi_size {list(roi_size)} must be two positive sizes divisible by the model's size divisor "
                f"{divisor} (e.g. {[max(divisor, r - r % divisor) for r in roi]})"
            )
        if not 0 <= overlap < 1:
            raise DualsegError(f"overlap must be in [0, 1), got {overlap}")
        outputs = sliding_window_inference(
            x, roi, sw_batch_size=sw_batch_size, predictor=lambda t: _forward(model, t, with_sr), overlap=overlap,
            mode="gaussian", sw_device=sw_device, device=device,
        )
    else:
        outputs = _forward(model, x, with_sr)
        if device is not None:
            outputs = {k: v.to(device) for k, v in outputs.items()}
    result = {}
    for key, y in outputs.items():
        # Crop the padding at the output's own resolution: SR methods predict at a multiple of the input size.
        ry, rx = y.shape[-2] / x.shape[-2], y.shape[-1] / x.shape[-1]
        y = y[..., : round(unpadded[0] * ry), : round(unpadded[1] * rx)]
        target = tuple(size) if key == "seg" else (round(size[0] * ry * input_scale), round(size[1] * rx * input_scale))
        if tuple(y.shape[-2:]) != target:
            mode = resize_mode if key == "seg" else "bilinear"
            y = F.interpolate(y, size=target, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
        result[key] = y
    return result


@torch.no_grad()
def predict_logits(model: nn.Module, image: Tensor, spec: InputSpec = DEFAULT_SPEC, *,
                   resize_mode: str = "bilinear") -> Tensor:
    """Segmentation logits ``(N, C, H, W)`` at the input's own size (see :func:`predict_outputs`)."""
    return predict_outputs(model, image, spec, resize_mode=resize_mode)["seg"]


@torch.no_grad()
def predict_probabilities(model: nn.Module, image: Tensor, spec: InputSpec = DEFAULT_SPEC, *, tta: bool = False,
                          **options: Any) -> dict[str, Tensor]:
    """``{"probs": (N, L, H, W)}`` class probabilities (``L = max(2, C)``, see ``logits_to_probs``), plus ``"sr"``
    with ``with_sr=True``; ``options`` as :func:`predict_outputs`.

    ``tta``: flip test-time augmentation: the image is predicted as is and flipped horizontally, vertically and
    both ways; each output is flipped back and the probabilities (and SR images) are averaged, so a model that is
    itself flip-equivariant gives the same result with and without TTA. Costs four passes.
    """
    from dualseg.metrics import logits_to_probs

    total: dict[str, Tensor] = {}
    flips = FLIPS if tta else FLIPS[:1]
    for dims in flips:
        out = predict_outputs(model, image.flip(dims) if dims else image, spec, **options)
        out["probs"] = logits_to_probs(out.pop("seg"))
        for key, value in out.items():
            value = value.flip(dims) if dims else value
            if key in total:
                total[key] += value
            else:
                total[key] = value
    if len(flips) > 1:
        for value in total.values():
            value /= len(flips)
    return total
