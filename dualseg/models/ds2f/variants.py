"""The registered DS2F models: ``ds2f_unet`` and ``ds2f_deeplabv3plus``, each DS2F's options (declared once, by
``DS2F``) plus its backbone's (declared by the backbone function)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from dualseg.models.base import check_channel_counts
from dualseg.models.builder import variant_of
from dualseg.models.ds2f.backbones import deeplabv3plus_backbone, unet_backbone
from dualseg.models.ds2f.model import DS2F
from dualseg.registry import MODELS


def build_ds2f(
    make_backbone: Callable[..., Any], in_channels: int, num_classes: int, options: dict[str, Any]
) -> DS2F:
    """DS2F around ``make_backbone(in_channels, **its options)``; an option both take (``align_corners``) goes to
    both."""
    check_channel_counts(in_channels, num_classes)  # before the backbone draws any weight
    takes = inspect.signature(make_backbone).parameters
    backbone = make_backbone(in_channels, **{k: v for k, v in options.items() if k in takes})
    ds2f_options = {k: v for k, v in options.items() if k not in takes or k == "align_corners"}
    return DS2F(backbone, in_channels, num_classes, **ds2f_options)


@MODELS.register("ds2f_unet")
@variant_of(DS2F, unet_backbone, fixed=("backbone",))
def ds2f_unet(in_channels: int = 1, num_classes: int = 2, **options: Any) -> DS2F:
    """DS2F with a U-Net backbone (the paper's vessel and lesion models; code ``Unet(super_reso=True, sr_layer=5,
    sr_seg_fusion=True, before=True)``). Options as ``DS2F`` plus ``unet_backbone``'s:

        channels: widths per level, finest first (64, 128, 256, 512, 1024 as the code); H and W divisible by
            ``2 ** (len(channels) - 1)``. The SR decoder is a full second expanding path (code ``sr_layer=5``).
        norm: the convolutions' normalisation (``"batch"``, code).
        up_mode: ``"bilinear_1x1"`` (code: bilinear x2 + 1x1 conv-BN-ReLU, then skip concat and DoubleConv),
            ``"transpose"`` or ``"bilinear"`` (the ``unet`` baseline's up-stages).

    Down-sampling uses the code's 3x3 stride-2 max-pool (the baseline U-Net: 2x2); pooling is free in FLOPs and
    gives the same sizes on valid inputs. Batch 1 works in training (no BN on 1x1 maps).
    """
    return build_ds2f(unet_backbone, in_channels, num_classes, options)


@MODELS.register("ds2f_deeplabv3plus")
@variant_of(DS2F, deeplabv3plus_backbone, fixed=("backbone",))
def ds2f_deeplabv3plus(in_channels: int = 1, num_classes: int = 2, **options: Any) -> DS2F:
    """DS2F with a DeepLabV3+ backbone (the paper's lesion and Cityscapes models; code ``DeeplabV3Plus``).
    Options as ``DS2F`` plus the ``deeplabv3plus`` baseline's: ``encoder`` (timm ResNet), ``pretrained``,
    ``pretrained_path``, ``output_stride`` (16 default as the baseline; the code's vessel script uses 8),
    ``aspp_rates``, ``decoder_channels`` (256), ``aspp_dropout``.

    Encoder and ASPP are shared; each stream has its own decoder (low-level 1x1 -> 48, two 3x3 convs, stride 4).
    The seg logits are bilinearly brought to the LR size, then x ``upscale``; the SR features are bilinearly brought
    to the LR size before the ESPCN head; the SFEM works at stride 4. Fixes the released code's bug:
    ``proxy_seg`` is computed from the FUSED segmentation feature. Training needs batch >= 2 (the ASPP's
    image-pooling branch normalises one value per channel). ``align_corners`` applies to the heads' upsampling (the
    decoder's own upsampling is the baseline's).
    """
    return build_ds2f(deeplabv3plus_backbone, in_channels, num_classes, options)
