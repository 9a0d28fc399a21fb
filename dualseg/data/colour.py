"""Colour jitter of RGB photographs (``data.augment.hue``, ``saturation``, ``channel_gain``): what another camera
does to the same scene. Applied by the dataset to the [0, 1] image before preprocessing and normalisation.

Note that per-image, per-channel ``zscore`` normalisation removes a channel gain (up to clipping at 1): the cast
matters for ``unit`` and ``imagenet`` inputs, hue and saturation for every normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.transforms import MapTransform, RandomizableTransform


def jitter_colour(image: torch.Tensor, hue_shift: float, saturation: float, gains: Sequence[float]) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] with each channel multiplied by its gain (clipped to [0, 1], as a sensor
    saturates), its saturation scaled by ``saturation`` (0: gray, 1: unchanged) and its hue turned by
    ``hue_shift`` (a fraction of the colour circle, in [-0.5, 0.5]). Values stay in [0, 1]."""
    from torchvision.transforms import functional as tvf

    out = (image * torch.as_tensor(gains, dtype=image.dtype)[:, None, None]).clamp(0, 1)
    if saturation != 1:
        out = tvf.adjust_saturation(out, saturation)
    if hue_shift:
        out = tvf.adjust_hue(out, hue_shift).clamp(0, 1)
    return out


class RandColourJitterd(RandomizableTransform, MapTransform):
    """Random :func:`jitter_colour` on every call: hue shift uniform in [-hue, hue], saturation factor in
    [1 - saturation, 1 + saturation], each channel's gain in [1 - channel_gain, 1 + channel_gain]."""

    def __init__(self, keys: str, hue: float, saturation: float, channel_gain: float) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.hue, self.saturation, self.channel_gain = hue, saturation, channel_gain

    def __call__(self, data: dict) -> dict:
        shift = self.R.uniform(-self.hue, self.hue)
        saturation = self.R.uniform(1 - self.saturation, 1 + self.saturation)
        gains = self.R.uniform(1 - self.channel_gain, 1 + self.channel_gain, size=3)
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = jitter_colour(torch.as_tensor(out[key]), shift, saturation, gains.tolist())
        return out
