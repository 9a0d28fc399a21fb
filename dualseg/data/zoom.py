"""The isotropic scale augmentation (``data.augment.scale_mode: isotropic``): one zoom factor for both axes, drawn
log-uniformly from ``data.augment.scale`` (as likely x0.6 as x1/0.6), and a rotation, output at the patch size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import monai.transforms as mt
from monai.transforms import MapTransform, RandomizableTransform


class RandZoomRotated(RandomizableTransform, MapTransform):
    """With probability ``prob``: sampling-grid scale ``s`` (structures appear 1/s as large) drawn log-uniformly
    from ``scale``, rotation uniform in +-``rotate_deg``, resampled to ``size`` about the centre; otherwise the
    centre crop of ``size``. ``modes``: interpolation per key (nearest for label maps)."""

    def __init__(self, keys: Sequence[str], prob: float, scale: tuple[float, float], rotate_deg: float,
                 size: tuple[int, int], modes: Sequence[str]) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        RandomizableTransform.__init__(self, prob=prob)
        self.log_scale = (math.log(scale[0]), math.log(scale[1]))
        self.angle = math.radians(rotate_deg)
        self.size, self.modes = tuple(size), dict(zip(keys, modes))
        self.crop = mt.CenterSpatialCrop(self.size)

    def draw(self) -> tuple[float, float]:
        """The next scale and rotation (radians)."""
        return math.exp(self.R.uniform(*self.log_scale)), self.R.uniform(-self.angle, self.angle)

    def __call__(self, data: dict) -> dict:
        self.randomize(None)
        out = dict(data)
        if not self._do_transform:
            for key in self.key_iterator(out):
                out[key] = self.crop(out[key])
            return out
        s, angle = self.draw()
        affine = mt.Affine(rotate_params=angle, scale_params=(s, s), spatial_size=self.size,
                           padding_mode="reflection", image_only=True)
        for key in self.key_iterator(out):
            out[key] = affine(out[key], mode=self.modes[key])
        return out
