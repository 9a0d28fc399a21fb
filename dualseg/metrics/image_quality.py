"""Image quality of a super-resolution output: PSNR and SSIM (MONAI), in the [0, 1] intensity space of the files.

The SR stream predicts in the normalised space of the model's input (z-score per image, ImageNet statistics, or
[0, 1]). Both the prediction and the reference are mapped back to [0, 1] (the file's dtype range: 8-bit / 255,
16-bit / 65535) with the inverse of that per-image, per-channel affine normalisation, the prediction is clamped to
[0, 1], and PSNR and SSIM use ``data_range = 1``: the range of the images actually compared. SSIM: Gaussian window
11, sigma 1.5, K = (0.01, 0.03), averaged over channels and positions (MONAI's ``SSIMMetric``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

IMAGE_QUALITY_METRICS: tuple[str, ...] = ("psnr", "ssim")
DATA_RANGE = 1.0


def unit_affine(normalized: np.ndarray, unit: np.ndarray) -> tuple[Tensor, Tensor]:
    """Per-channel ``a, b`` with ``unit = a * normalized + b``, from one image in both spaces (H, W, C).

    Exact for every normalisation of :func:`dualseg.data.dataset.normalize_image` (all are affine per channel).
    """
    a = unit.std(axis=(0, 1)) / np.maximum(normalized.std(axis=(0, 1)), 1e-12)
    b = unit.mean(axis=(0, 1)) - a * normalized.mean(axis=(0, 1))
    as_map = lambda v: torch.tensor(v, dtype=torch.float32)[:, None, None]  # noqa: E731
    return as_map(a), as_map(b)


def image_quality(prediction: Tensor, reference: Tensor, data_range: float = DATA_RANGE) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``prediction`` against ``reference``, both (C, H, W) in [0, ``data_range``].

    PSNR = 10 log10(data_range^2 / MSE) (inf for identical images).
    """
    from monai.metrics import PSNRMetric, SSIMMetric

    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and reference {tuple(reference.shape)} differ")
    p, r = prediction.float()[None].cpu(), reference.float()[None].cpu()
    psnr = float(PSNRMetric(max_val=data_range)(p, r).squeeze())
    ssim = float(SSIMMetric(spatial_dims=2, data_range=data_range)(p, r).squeeze()) if min(p.shape[-2:]) >= 11 \
        else float("nan")  # the 11x11 window needs an image at least that large
    return {"psnr": psnr, "ssim": ssim}
