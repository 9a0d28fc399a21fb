"""Augmentations applied to image, mask and FOV together (MONAI dictionary transforms on channel-first tensors).

Images are (C, H, W) float tensors, masks and FOV masks (1, H, W) while transformed: spatial transforms use
bilinear interpolation for the image and nearest for the label maps. MONAI's metadata tracking is switched off
(plain tensors are much faster in the training loop).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dualseg.config import DEFAULT_SCALE_RANGE
from dualseg.errors import DualsegError

if TYPE_CHECKING:
    import monai.transforms as mt

    from dualseg.config import AugmentConfig

LABEL_KEYS = ("mask", "fov")
KEYS = ("image", *LABEL_KEYS, "hr_image")
INTENSITY_KEYS = ("image", "hr_image")  # one random draw for input and SR target, so they stay consistent


def _modes(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("nearest" if k in LABEL_KEYS else "bilinear" for k in keys)


def context_crop(patch_size: tuple[int, int], scale: tuple[float, float], rotate_deg: float) -> tuple[int, int]:
    """The square crop that holds every pixel an affine (grid scale up to ``max(scale)``, rotation up to
    ``rotate_deg``) reads to make a ``patch_size`` output: side x max scale x (cos + sin of the angle, up to 45
    degrees), at least the patch."""
    angle = math.radians(min(rotate_deg, 45.0))
    side = math.ceil(max(patch_size) * max(max(scale), 1.0) * (math.cos(angle) + math.sin(angle)) - 1e-9)
    return side, side


def build_train_transform(
    aug: AugmentConfig, patch_size: tuple[int, int] | None, resize: tuple[int, int] | None = None,
    dataset_scale: tuple[float, float] = DEFAULT_SCALE_RANGE,
) -> mt.Compose:
    """Optional resize, a random crop to ``patch_size`` (padding smaller images), then random augmentation.

    ``dataset_scale``: the description's ``scale_range``, the affine's scale range when ``aug.scale`` is
    ``auto``. With ``aug.scale_mode: isotropic`` (and an affine probability) the crop is :func:`context_crop` and
    :class:`~dualseg.data.zoom.RandZoomRotated` brings it to the patch."""
    import monai.transforms as mt  # imported here: MONAI takes seconds to import, most CLI verbs never need it
    from monai.data import set_track_meta

    set_track_meta(False)
    keys = KEYS
    scale = dataset_scale if aug.scale == "auto" else aug.scale
    isotropic = aug.scale_mode == "isotropic" and patch_size is not None and aug.affine > 0
    steps: list = []
    if resize is not None:
        steps.append(mt.Resized(keys, spatial_size=resize, mode=_modes(keys), allow_missing_keys=True))
    if patch_size is not None:
        crop = context_crop(patch_size, scale, aug.rotate_deg) if isotropic else patch_size
        steps.append(mt.SpatialPadd(keys, spatial_size=crop, allow_missing_keys=True))
        steps.append(mt.RandSpatialCropd(keys, roi_size=crop, random_size=False, allow_missing_keys=True))
    if aug.flip:
        steps += [mt.RandFlipd(keys, prob=aug.flip, spatial_axis=axis, allow_missing_keys=True) for axis in (0, 1)]
    if aug.rot90:
        steps.append(mt.RandRotate90d(keys, prob=aug.rot90, max_k=3, allow_missing_keys=True))
    if isotropic:
        from dualseg.data.zoom import RandZoomRotated

        steps.append(RandZoomRotated(keys, aug.affine, scale, aug.rotate_deg, patch_size, _modes(keys)))
    elif aug.affine:
        rad = aug.rotate_deg * 3.141592653589793 / 180
        steps.append(
            mt.RandAffined(
                keys,
                prob=aug.affine,
                rotate_range=(rad,),
                scale_range=((scale[0] - 1, scale[1] - 1),),
                mode=_modes(keys),
                padding_mode="reflection",
                allow_missing_keys=True,
            )
        )
    if aug.elastic:
        steps.append(
            mt.Rand2DElasticd(
                keys,
                spacing=(32, 32),
                magnitude_range=aug.elastic_magnitude,
                prob=aug.elastic,
                mode=_modes(keys),
                padding_mode="reflection",
                allow_missing_keys=True,
            )
        )
    if aug.intensity:
        steps.append(mt.RandScaleIntensityd(INTENSITY_KEYS, factors=0.2, prob=aug.intensity, allow_missing_keys=True))
        steps.append(mt.RandShiftIntensityd(INTENSITY_KEYS, offsets=0.2, prob=aug.intensity, allow_missing_keys=True))
    if aug.gamma:
        steps.append(mt.RandAdjustContrastd(INTENSITY_KEYS, gamma=(0.7, 1.5), prob=aug.gamma, allow_missing_keys=True))
    if aug.noise:  # input only: an SR target stays clean
        steps.append(mt.RandGaussianNoised("image", prob=aug.noise, std=0.05))
    return mt.Compose(steps)


def build_colour_transform(aug: AugmentConfig, channels: int, dataset: str) -> mt.Compose | None:
    """The colour augmentation of [0, 1] ``image`` tensors (before preprocessing and normalisation), or None when
    its keys are off. ``channels``: of the images as read; the colour jitter keys need 3 (RGB)."""
    if not (aug.colour_keys or aug.histogram_shift):
        return None
    import monai.transforms as mt
    from monai.data import set_track_meta

    from dualseg.data.colour import RandColourJitterd

    set_track_meta(False)
    steps: list = []
    if aug.colour_keys:
        if channels != 3:
            names = ", ".join(f"data.augment.{k}" for k in aug.colour_keys)
            raise DualsegError(f"{names} change colours, but the images of dataset '{dataset}' have {channels} "
                               "channel(s), not RGB: set them to 0 (histogram_shift and gamma work on any image)")
        steps.append(RandColourJitterd("image", aug.hue, aug.saturation, aug.channel_gain))
    if aug.histogram_shift:
        steps.append(mt.RandHistogramShiftd("image", num_control_points=(5, 10), prob=aug.histogram_shift))
    return mt.Compose(steps)
