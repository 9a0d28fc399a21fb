"""Image regression losses for super-resolution outputs: ``l1`` (DRFL Eq. 4) and ``mse`` (DS2F Eq. 16).

``forward(prediction, target, valid=None)`` with prediction and target of the same shape (N, C, H, W); ``valid``
(N, H, W) restricts the mean to the pixels that count when given at the same resolution.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dualseg.errors import DualsegError
from dualseg.registry import LOSSES


def _pixel_mean(error: Tensor, valid: Tensor | None) -> Tensor:
    if valid is None:
        return error.mean()
    v = valid.to(error.dtype)
    if v.ndim == 3:
        v = v[:, None]
    v = v.expand_as(error)
    return (error * v).sum() / v.sum().clamp_min(1)


class _Regression(nn.Module):
    name = "regression"

    def error(self, diff: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, prediction: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        if prediction.shape != target.shape:
            raise DualsegError(
                f"loss '{self.name}': prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ; "
                "an SR output must match its HR target (check data.sr.scale and the model's upscale)"
            )
        return _pixel_mean(self.error(prediction.float() - target.float()), valid)


@LOSSES.register("l1")
class L1Loss(_Regression):
    """Mean absolute error, 1/(WH) sum |p_sr - g| (DRFL Eq. 4)."""

    name = "l1"

    def error(self, diff: Tensor) -> Tensor:
        return diff.abs()


@LOSSES.register("mse")
class MSELoss(_Regression):
    """Mean squared error (DS2F Eq. 16)."""

    name = "mse"

    def error(self, diff: Tensor) -> Tensor:
        return torch.square(diff)
