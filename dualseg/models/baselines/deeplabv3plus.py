"""DeepLabV3+ (Chen et al., ECCV 2018, arXiv:1802.02611) on a timm ResNet encoder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError, did_you_mean
from dualseg.models.blocks import ASPP, ConvNormAct, init_weights
from dualseg.models.encoder_decoder import EncoderDecoderModel
from dualseg.models.options import check_positive_int
from dualseg.models.weights import load_exactly, read_weights_file
from dualseg.registry import MODELS

DEFAULT_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def create_encoder(name: str, in_channels: int, output_stride: int, pretrained: bool) -> nn.Module:
    """timm feature extractor returning the stride-4 and the deepest (stride ``output_stride``) feature maps."""
    if not timm.is_model(name):
        raise DualsegError(
            f"deeplabv3plus: unknown timm encoder '{name}'{did_you_mean(name, timm.list_models())}; "
            "use a ResNet such as resnet18, resnet34, resnet50 or resnet101"
        )
    try:
        encoder = timm.create_model(
            name,
            features_only=True,
            out_indices=(1, 4),
            output_stride=output_stride,
            in_chans=in_channels,
            pretrained=pretrained,
        )
    except OSError as e:  # no network / no cached weights (huggingface_hub raises OSError subclasses)
        raise DualsegError(
            f"deeplabv3plus: could not fetch ImageNet weights for '{name}' ({type(e).__name__}); when offline, "
            "download them elsewhere and pass pretrained_path=<file>, or use pretrained=False"
        ) from e
    except TypeError as e:  # architectures without output_stride / features_only support
        raise DualsegError(f"deeplabv3plus: timm model '{name}' cannot serve as a dilated encoder: {e}") from e
    reductions = encoder.feature_info.reduction()
    if list(reductions) != [4, output_stride]:
        raise DualsegError(
            f"deeplabv3plus: encoder '{name}' gives features at strides {reductions}, need [4, {output_stride}]; "
            "use a ResNet-family encoder"
        )
    return encoder


def load_encoder_weights(
    encoder: nn.Module,
    path: str | os.PathLike[str],
    in_channels: int,
    state_filter: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> None:
    """Load a local weights file (``.pth``/``.pt``/``.bin`` or ``.safetensors``) into a timm feature encoder.

    Accepts a plain timm state dict (classifier keys such as ``fc.*`` are dropped), a dict wrapping it under
    ``state_dict``/``model``, ``module.``-prefixed keys, or an ``encoder.``-prefixed dualseg state dict. A first
    convolution with another input channel count (e.g. RGB ImageNet weights, ``in_channels=1``) is adapted as timm
    does (summed for 1 channel, repeated and rescaled otherwise). ``state_filter``, when given, maps the file's state
    dict (prefixes already stripped) before matching, e.g. to resize an architecture's position tables.
    """
    path = os.fspath(path)
    state = read_weights_file(path, "deeplabv3plus")

    own = encoder.state_dict()
    if not any(k in own for k in state) and any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    if state_filter is not None:
        state = state_filter(state)
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier", "fc")
    state = {k: v for k, v in state.items() if k in own or not k.startswith(f"{classifier}.")}

    load_exactly(encoder, state, "deeplabv3plus", f"'{path}'", "the encoder", "is it the same architecture?",
                 first_conv=f"{cfg.get('first_conv', 'conv1')}.weight")


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+ decoder: ASPP on the deep features (``aspp``; ``None`` when the caller runs a shared ASPP
    first, as DS2F's streams), upsample to the low-level (stride-4) features reduced to 48 channels by a 1x1 conv,
    concatenate, two 3x3 ``ConvNormAct``. ``forward((low, high))`` returns ``channels`` features at stride 4."""

    def __init__(self, low_ch: int, channels: int, aspp: nn.Module | None, low_proj_ch: int = 48) -> None:
        super().__init__()
        self.aspp = aspp
        self.low_proj = ConvNormAct(low_ch, low_proj_ch, 1)
        self.fuse = nn.Sequential(
            ConvNormAct(channels + low_proj_ch, channels, 3),
            ConvNormAct(channels, channels, 3),
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        low, high = feats
        if self.aspp is not None:
            high = self.aspp(high)
        y = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([self.low_proj(low), y], dim=1))


def check_deeplab_options(owner: str, output_stride: int, decoder_channels: int) -> None:
    """``output_stride`` 8 or 16 and a positive ``decoder_channels``."""
    if output_stride not in DEFAULT_RATES:
        raise DualsegError(f"{owner}: output_stride must be 8 or 16, got {output_stride!r}")
    check_positive_int("decoder_channels", decoder_channels, owner)


def build_encoder(
    in_channels: int,
    encoder: str,
    pretrained: bool,
    pretrained_path: str | os.PathLike[str] | None,
    output_stride: int,
) -> nn.Module:
    """The timm encoder, with ImageNet weights (``pretrained``) or a local weights file (``pretrained_path``)."""
    model = create_encoder(encoder, in_channels, output_stride, pretrained and pretrained_path is None)
    if pretrained_path is not None:
        load_encoder_weights(model, pretrained_path, in_channels)
    return model


def build_aspp(high_ch: int, channels: int, output_stride: int, rates: Sequence[int] | None, dropout: float) -> ASPP:
    """ASPP with the given atrous ``rates`` (default: those of ``output_stride``, ``DEFAULT_RATES``)."""
    return ASPP(high_ch, channels, DEFAULT_RATES[output_stride] if rates is None else tuple(rates), dropout=dropout)


@MODELS.register("deeplabv3plus")
class DeepLabV3Plus(EncoderDecoderModel):
    """DeepLabV3+ (Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", ECCV 2018) with a timm ResNet encoder.

    ASPP on the deepest features (stride ``output_stride``), upsampled to the stride-4 low-level features (reduced
    to 48 channels by a 1x1 conv), concatenated, two 3x3 convs, a 1x1 classifier (the head, held by the decoder
    module as ``decoder.classifier``: the name its checkpoints hold), upsampled to the input size.
    Decoder convolutions are regular (not depthwise-separable) 3x3 convolutions.

    Options:
        encoder: timm ResNet name (resnet18/34/50/101, resnext, seresnet, ...).
        pretrained: load timm's ImageNet weights (downloads them; needs network or the HF cache).
        pretrained_path: local weights file for the encoder (offline use); overrides ``pretrained``.
        output_stride: 16 or 8 (dilated last stage(s)); also the ``size_divisor``, so the feature grids align.
        aspp_rates: atrous rates; default (6, 12, 18) at output stride 16 and (12, 24, 36) at 8.
        decoder_channels: width of ASPP and decoder.
        aspp_dropout: dropout after the ASPP projection.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        encoder: str = "resnet50",
        pretrained: bool = False,
        pretrained_path: str | os.PathLike[str] | None = None,
        output_stride: int = 16,
        aspp_rates: Sequence[int] | None = None,
        decoder_channels: int = 256,
        aspp_dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, num_classes)
        check_deeplab_options("deeplabv3plus", output_stride, decoder_channels)
        self.size_divisor = output_stride
        self.encoder_name = encoder
        self.encoder = build_encoder(in_channels, encoder, pretrained, pretrained_path, output_stride)
        low_ch, high_ch = self.encoder.feature_info.channels()
        aspp = build_aspp(high_ch, decoder_channels, output_stride, aspp_rates, aspp_dropout)
        self.decoder = DeepLabV3PlusDecoder(low_ch, decoder_channels, aspp)
        self.decoder.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        init_weights(self.decoder)

    @property
    def head(self) -> nn.Module:  # type: ignore[override]
        return self.decoder.classifier

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.decoder(feats)]
