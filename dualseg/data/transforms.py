"""Augmentations applied to image, mask and FOV together (MONAI dictionary transforms on channel-first tensors).

Images are (C, H, W) float tensors, masks and FOV masks (1, H, W) while transformed: spatial transforms use
bilinear interpolation for the image and nearest for the label maps. MONAI's metadata tracking is switched off
(plain tensors are much faster in the training loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import monai.transforms as mt

    from dualseg.config import AugmentConfig

LABEL_KEYS = ("mask", "fov")
KEYS = ("image", *LABEL_KEYS, "hr_image")
INTENSITY_KEYS = ("image", "hr_image")  # one random draw for input and SR target, so they stay consistent


def _modes(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("nearest" if k in LABEL_KEYS else "bilinear" for k in keys)


def build_train_transform(
    aug: AugmentConfig, patch_size: tuple[int, int] | None, resize: tuple[int, int] | None = None
) -> mt.Compose:
    """Optional resize, a random crop to ``patch_size`` (padding smaller images), then random augmentation."""
    import monai.transforms as mt  # imported here: MONAI takes seconds to import, most CLI verbs never need it
    from monai.data import set_track_meta

    set_track_meta(False)
    keys = KEYS
    steps: list = []
    if resize is not None:
        steps.append(mt.Resized(keys, spatial_size=resize, mode=_modes(keys), allow_missing_keys=True))
    if patch_size is not None:
        steps.append(mt.SpatialPadd(keys, spatial_size=patch_size, allow_missing_keys=True))
        steps.append(mt.RandSpatialCropd(keys, roi_size=patch_size, random_size=False, allow_missing_keys=True))
    if aug.flip:
        steps += [mt.RandFlipd(keys, prob=aug.flip, spatial_axis=axis, allow_missing_keys=True) for axis in (0, 1)]
    if aug.rot90:
        steps.append(mt.RandRotate90d(keys, prob=aug.rot90, max_k=3, allow_missing_keys=True))
    if aug.affine:
        rad = aug.rotate_deg * 3.141592653589793 / 180
        steps.append(
            mt.RandAffined(
                keys,
                prob=aug.affine,
                rotate_range=(rad,),
                scale_range=((aug.scale[0] - 1, aug.scale[1] - 1),),
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
