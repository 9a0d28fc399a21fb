"""SSIM loss ``ssim`` (Wang et al., IEEE TIP 2004): 1 - SSIM of the output and target images.

Part of DS2F's task-interaction term (Dual-Stream Shared Feature, TPAMI 2023, Sec. III-D, Eq. 17, Tables
II-III), which supervises the fused outputs of its shared-feature module with "more restrictive" losses; follows
the conventions of :mod:`dualseg.losses.segmentation` and :mod:`dualseg.losses.regression`:
``forward(output, target, valid=None)`` returns a scalar float32 tensor on the output's device.

Departure from the authors' code (see ``design/seed-methods.md`` B5): they use ``data_range=1`` on images
normalised to [-1, 1]. dualseg normalises per image (z-score by default), so by default the range comes from the
data (the target's per-image min/max), see ``SSIMLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.losses.checks import check_int_at_least, check_positive_number
from dualseg.losses.segmentation import masked_mean
from dualseg.registry import LOSSES


@LOSSES.register("ssim")
class SSIMLoss(nn.Module):
    """``1 - mean SSIM`` (Wang et al., "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 2004) between an image output and its reference, both ``(N, C, H, W)``.

    SSIM uses a normalised ``win_size`` x ``win_size`` Gaussian window (std ``sigma``), population statistics,
    ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and only windows that lie fully inside the image ("valid" filtering, as
    Wang et al.'s reference code); the map is averaged over channels and windows (and images). The window
    statistics are computed in float32 with the separable window (two 1D passes: the same values as MONAI's
    ``compute_ssim_and_cs``, which filters with the dense 2D window, at 2/win of its multiply-adds).

    Data range ``L``: SSIM's luminance term is not invariant to an intensity shift, and dualseg images are
    normalised per image (z-score by default: signed values, range ~ 5-10), so neither ``L = 1`` nor the raw
    values are meaningful. With ``data_range=None`` (default) each image pair is measured relative to its
    *target*: both are mapped by ``(v - min(target)) / (max(target) - min(target))`` (per sample over C, H, W;
    per sample and channel with ``per_channel=True``) and SSIM is computed with ``L = 1``. The target then spans
    exactly [0, 1], and the loss is invariant to any affine intensity change ``a v + b`` (``a > 0``) applied to
    both images, i.e. identical under z-score, [0, 1] or [-1, 1] normalisation (``per_channel=True`` extends this
    to per-channel maps such as per-channel z-score or ImageNet statistics). A constant target (range 0) uses
    range 1. A float ``data_range`` applies the standard formula to the values as given (right for
    non-negative intensities, e.g. 1.0 for [0, 1] images).

    ``valid`` (the FOV, ``(N, H, W)`` or ``(N, 1, H, W)``) restricts the mean to windows centred on valid
    pixels; a mask of any other shape (e.g. the FOV at the low input resolution) is ignored.
    """

    def __init__(
        self,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        data_range: float | None = None,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        self.win_size = check_int_at_least("ssim", "win_size", win_size, 1)
        if self.win_size % 2 == 0:
            raise DualsegError(f"loss 'ssim': win_size must be odd, got {win_size}")
        self.sigma = check_positive_number("ssim", "sigma", sigma)
        self.k1 = check_positive_number("ssim", "k1", k1)
        self.k2 = check_positive_number("ssim", "k2", k2)
        self.data_range = None if data_range is None else check_positive_number("ssim", "data_range", data_range)
        self.per_channel = bool(per_channel)

    def forward(self, prediction: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if prediction.ndim != 4 or prediction.shape != target.shape:
            raise DualsegError(
                f"loss 'ssim': prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be "
                "(N, C, H, W) of the same shape; an SR output must match its HR target (check data.sr.scale and "
                "the model's upscale)"
            )
        n, _, h, w = prediction.shape
        if min(h, w) < self.win_size:
            raise DualsegError(f"loss 'ssim': images of {h}x{w} are smaller than the {self.win_size}-pixel window")
        x = prediction.float()
        y = target.to(device=x.device, dtype=torch.float32)
        data_range = self.data_range
        if data_range is None:
            dims = (2, 3) if self.per_channel else (1, 2, 3)
            ref = y.detach()
            low = ref.amin(dim=dims, keepdim=True)
            span = ref.amax(dim=dims, keepdim=True) - low
            span = torch.where(span > 0, span, torch.ones_like(span))
            x, y = (x - low) / span, (y - low) / span
            data_range = 1.0
        ssim_map = self._ssim_map(x, y, data_range)
        loss_map = 1.0 - ssim_map.mean(dim=1)  # (N, H - win + 1, W - win + 1)
        v = None
        if valid is not None:
            if valid.ndim == 4 and valid.shape[1] == 1:
                valid = valid[:, 0]
            if tuple(valid.shape) == (n, h, w):
                r = self.win_size // 2
                v = valid[:, r : h - r, r : w - r].to(loss_map.device)
                v = v if v.dtype == torch.bool else v > 0.5
        return masked_mean(loss_map, v)

    def _ssim_map(self, x: Tensor, y: Tensor, data_range: float) -> Tensor:
        """The SSIM map over the valid windows, ``(N, C, H - win + 1, W - win + 1)``: the Gaussian window is
        separable, so the five window statistics are filtered by a column pass and a row pass (2 x win taps per
        pixel instead of win^2; equal to ``monai.metrics.regression.compute_ssim_and_cs``, tested)."""
        c = x.shape[1]
        taps = torch.arange(self.win_size, device=x.device, dtype=torch.float32) - (self.win_size - 1) / 2
        g = torch.exp(-0.5 * (taps / self.sigma) ** 2)
        g = g / g.sum()
        stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # 5C channels, one grouped filter for all
        with torch.autocast(x.device.type, enabled=False):  # float32 statistics under mixed precision too
            stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), groups=5 * c)
            stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1), groups=5 * c)
        mu_x, mu_y, mu_xx, mu_yy, mu_xy = stats.split(c, dim=1)
        c1, c2 = (self.k1 * data_range) ** 2, (self.k2 * data_range) ** 2
        var_x, var_y, cov = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
        contrast = (2 * cov + c2) / (var_x + var_y + c2)
        return (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * contrast

    def extra_repr(self) -> str:
        rng = "per-image target range" if self.data_range is None else self.data_range
        return f"win_size={self.win_size}, sigma={self.sigma}, k1={self.k1}, k2={self.k2}, data_range={rng}"
