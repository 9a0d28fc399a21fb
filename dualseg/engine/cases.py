"""Predict every image of an evaluation dataset at full label resolution, one case at a time (with the SR output
and its HR reference of dual-stream models, for PSNR/SSIM)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from dualseg.config import EvalConfig
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.sr_pairs import SRSpec
from dualseg.inference.predictor import predict_logits
from dualseg.inference.spec import InputSpec
from dualseg.metrics.conventions import Convention
from dualseg.metrics.image_quality import image_quality, unit_affine
from dualseg.progress import progress_bar
from dualseg.runtime import autocast, resolve_precision


class _KeepOutputs(nn.Module):
    """Passes the model through, keeping its last output dict and input shape (for the "sr" output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.size_divisor = getattr(model, "size_divisor", 1)
        self.outputs: dict = {}
        self.input_shape: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> dict:
        self.outputs = self.model(x)
        self.input_shape = tuple(x.shape)
        return self.outputs


def predict_cases(model: nn.Module, dataset: SegmentationDataset, eval_cfg: EvalConfig, conv: Convention,
                  device: torch.device, spec: InputSpec, progress: bool, keep_sr: bool,
                  sr: SRSpec | None) -> Iterator[dict]:
    """Yield ``{name, logits (1, C, H, W) float32 at full size, mask, valid[, quality]}`` per image, in order,
    predicted as ``spec`` says (under its precision on ``device``)."""
    amp_dtype = resolve_precision(spec.precision, device)
    resize_mode = eval_cfg.resize_back
    if resize_mode == "auto":
        resize_mode = "nearest" if conv.unit == "volume" else "bilinear"
    # the "sr" output can be matched to its reference only for whole-image passes without resizing
    keeper = _KeepOutputs(model) if keep_sr and spec.resize is None and spec.roi_size is None else None
    was_training = model.training
    model.eval()
    try:
        for i in progress_bar(range(len(dataset)), desc="evaluate", enabled=progress):
            item = dataset[i]
            with autocast(device, amp_dtype):
                logits = predict_logits(keeper or model, item["image"][None].to(device), spec,
                                        resize_mode=resize_mode)
            case = {"name": item["name"], "logits": logits.float(), "mask": item["mask"],
                    "valid": item.get("fov") if eval_cfg.use_fov else None}
            if keeper is not None and "sr" in keeper.outputs:
                pair = _sr_pair(dataset, i, item, keeper, spec.input_scale, sr)
                if pair is not None:
                    case["quality"] = {"name": item["name"], **image_quality(*pair)}
            yield case
    finally:
        model.train(was_training)


def _sr_pair(dataset, index, item, keeper, input_scale, sr) -> tuple[torch.Tensor, torch.Tensor] | None:
    """SR output and its HR reference in [0, 1] (see dualseg.metrics.image_quality), or None if they do not fit."""
    from dualseg.data.io import read_image
    from dualseg.data.preprocess import unit_image
    from dualseg.data.sr_pairs import load_target

    sample = dataset.samples[index]
    unit = unit_image(read_image(sample.image), dataset.description.channels, dataset.preprocess, sample.image)
    a, b = unit_affine(item["image"].numpy().transpose(1, 2, 0), unit)
    if "hr_image" in item:  # a dataset that brings its own HR reference
        reference = item["hr_image"]
    elif sr is not None and sr.mode == "teacher":
        reference = torch.from_numpy(load_target(sr, sample.stem, unit.shape).transpose(2, 0, 1).copy())
    else:
        reference = item["image"]
    out = keeper.outputs["sr"][0].float().cpu()
    h, w = (int(d * input_scale) for d in item["image"].shape[-2:])  # the model input before padding
    ratio = out.shape[-1] / keeper.input_shape[-1]
    out = out[..., : round(h * ratio), : round(w * ratio)]
    if any(abs(o - r) > max(1, ratio) for o, r in zip(out.shape[-2:], reference.shape[-2:])):
        return None  # the SR output is not at the reference's scale
    hh, ww = min(out.shape[-2], reference.shape[-2]), min(out.shape[-1], reference.shape[-1])
    prediction = (out[..., :hh, :ww] * a + b).clamp(0, 1)
    return prediction, (reference[..., :hh, :ww].float() * a + b).clamp(0, 1)


