"""What every dualseg model shares: the output contract and the input-size rule."""

from __future__ import annotations

import torch
import torch.nn as nn

from dualseg.errors import DualsegError


class SegmentationModel(nn.Module):
    """Base class of every registered model.

    Contract: ``forward(x)`` with ``x`` of shape ``(N, in_channels, H, W)`` returns a ``dict[str, Tensor]``
    whose ``"seg"`` entry holds the final segmentation logits ``(N, num_classes, H_label, W_label)``.
    Extra outputs (``"sr"``, ``"aux_1"``, proxy outputs, ...) are named and read only by the method's loss.
    ``size_divisor`` is the factor H and W must be divisible by; the data pipeline and inference pad to it.
    """

    size_divisor: int = 1

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        check_channel_counts(in_channels, num_classes)
        self.in_channels = in_channels
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for a wrong channel count or a size the network cannot take."""
        if x.ndim != 4:
            raise DualsegError(f"{type(self).__name__} expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise DualsegError(
                f"{type(self).__name__} was built for {self.in_channels} input channel(s) but got {x.shape[1]}; "
                f"set model in_channels={x.shape[1]} or convert the images"
            )
        d = self.size_divisor
        h, w = x.shape[-2:]
        if h % d or w % d:
            raise DualsegError(
                f"{type(self).__name__} needs H and W divisible by {d}, got {h}x{w}; "
                f"nearest valid sizes: {nearest_valid(h, d)}x{nearest_valid(w, d)} (pad or resize)"
            )


def check_channel_counts(in_channels: int, num_classes: int) -> None:
    """At least one input channel and one class (1 = one sigmoid logit)."""
    if in_channels < 1:
        raise DualsegError(f"in_channels must be >= 1, got {in_channels}")
    if num_classes < 1:
        raise DualsegError(f"num_classes must be >= 1 (1 = one sigmoid logit), got {num_classes}")


def nearest_valid(size: int, divisor: int) -> str:
    """The valid sizes just below and above ``size`` for a divisor, e.g. '496 or 512' (or ``size`` when valid)."""
    if size % divisor == 0:
        return str(size)
    low = (size // divisor) * divisor
    high = low + divisor
    return f"{low} or {high}" if low > 0 else str(high)
