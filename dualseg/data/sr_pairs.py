"""Super-resolution pairs for the dual-stream methods: a low-resolution input and a high-resolution image target.

Two sources of the HR target (``data.sr.mode``):

* ``downsample``: the original image is the HR target and the model input is the original downsampled by ``scale``
  (``interpolation``: ``area`` averaging by default; ``bicubic`` as the DS2F code's cv2.INTER_CUBIC resize, or
  ``bilinear``; see ``downsample``) - DRFL's self-supervised setting and DS2F's low-resolution input. Evaluation
  and prediction make the input the same way (``input_mode`` of the predictor).
* ``teacher``: the model input is the original image and the HR target is a teacher SR model's ``scale``x output
  (``dualseg make-sr-targets``), DRFL's distillation. The targets live in ``targets_dir/<stem>.npy`` in the same
  normalised intensity space as the input (recorded in ``targets_dir/targets.json`` and checked).

Augmentation happens once, at the HR resolution, on the image, the masks and the HR target together; the input is
derived from the augmented HR image afterwards, so input, masks and target always stay aligned. In ``teacher`` mode
the original image is first repeated ``scale`` x ``scale`` (nearest), so area downsampling recovers it exactly
wherever no interpolating transform (affine, elastic) was applied. ``mask_at`` chooses the label resolution:
``input`` (DRFL predicts at the input size) or ``hr`` (DS2F predicts at the HR size). ``patch_size`` counts HR pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dualseg.errors import DualsegError

TARGETS_META = "targets.json"
INTERPOLATIONS = ("area", "bicubic", "bilinear")


def downsample(x: torch.Tensor, scale: int, mode: str = "area") -> torch.Tensor:
    """``(N, C, H, W)`` downsampled by the integer ``scale`` to ``(H // scale, W // scale)``: ``area`` = the mean
    of each ``scale x scale`` block (adaptive blocks when H or W is not a multiple); ``bicubic`` (a = -0.75, as
    cv2.INTER_CUBIC) and ``bilinear`` sample at the block centres (``align_corners=False``, no antialiasing, as
    cv2.resize), with the exact ratio ``scale`` in the coordinate mapping."""
    if mode not in INTERPOLATIONS:
        raise DualsegError(f"unknown LR interpolation {mode!r}; choose one of {', '.join(INTERPOLATIONS)}")
    size = (x.shape[-2] // scale, x.shape[-1] // scale)
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    y = F.interpolate(x, scale_factor=1 / scale, mode=mode, align_corners=False, recompute_scale_factor=False)
    return y[..., : size[0], : size[1]]


@dataclass(frozen=True)
class SRSpec:
    mode: str  # "downsample" or "teacher"
    scale: int = 2
    mask_at: str = "input"  # "input" or "hr"
    targets_dir: Path | None = None
    normalize: str = "zscore"
    interpolation: str = "area"  # how the LR input is made from the HR image (see ``downsample``)

    def check_targets(self) -> None:
        if self.mode != "teacher":
            return
        if self.targets_dir is None or not (self.targets_dir / TARGETS_META).is_file():
            raise DualsegError(
                f"data.sr.mode 'teacher' needs data.sr.targets_dir with {TARGETS_META} (made by "
                f"'dualseg make-sr-targets'); got {self.targets_dir}"
            )
        meta = json.loads((self.targets_dir / TARGETS_META).read_text())
        if meta.get("scale") != self.scale or meta.get("normalize") != self.normalize:
            raise DualsegError(
                f"SR targets in {self.targets_dir} were made with scale {meta.get('scale')} and normalisation "
                f"'{meta.get('normalize')}', but the config asks for scale {self.scale} and '{self.normalize}'"
            )


def load_target(spec: SRSpec, stem: str, image_shape: tuple[int, ...]) -> np.ndarray:
    """The teacher's HR image for ``stem`` as (sH, sW, C) float32, checked against the input's size."""
    path = spec.targets_dir / f"{stem}.npy"
    if not path.is_file():
        raise DualsegError(f"SR target missing: {path}; run 'dualseg make-sr-targets' for this dataset")
    target = np.load(path, allow_pickle=False).astype(np.float32)
    h, w, c = image_shape
    if target.shape != (spec.scale * h, spec.scale * w, c):
        raise DualsegError(f"SR target {path} has shape {target.shape}, expected {(spec.scale * h, spec.scale * w, c)}")
    return target


def to_hr_stack(spec: SRSpec, data: dict[str, torch.Tensor], target: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Bring image, masks and HR target to one (HR) grid before the spatial augmentation."""
    if spec.mode == "downsample":
        data["hr_image"] = data["image"].clone()
        return data
    s = spec.scale
    data["hr_image"] = torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1)))
    for key in ("image", "mask", "fov"):
        if key in data:
            data[key] = data[key].repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)
    return data


def from_hr_stack(spec: SRSpec, item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Derive the low-resolution input (``spec.interpolation``; teacher mode: area, which undoes the nearest
    repeat) and, for ``mask_at: input``, the input-size masks (nearest)."""
    s = spec.scale
    h, w = item["image"].shape[-2:]
    if h % s or w % s:
        raise DualsegError(f"SR pairs need an HR size divisible by the scale {s}, got {h}x{w}; set data.patch_size")
    mode = spec.interpolation if spec.mode == "downsample" else "area"
    item["image"] = downsample(item["image"][None], s, mode)[0]
    if spec.mask_at == "input":
        for key in ("mask", "fov"):
            if key in item:
                item[key] = item[key][..., s // 2 :: s, s // 2 :: s].contiguous()
    return item
