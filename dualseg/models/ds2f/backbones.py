"""DS2F backbones made from the registered baselines' parts (the paper's "on any backbone"): a shared encoder and
a factory of new decoders, one per stream. ``EncoderDecoderBackbone`` takes the parts of any encoder-decoder
network; ``unet_backbone`` and ``deeplabv3plus_backbone`` build the two of the paper."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from dualseg.models.baselines.deeplabv3plus import (
    DeepLabV3PlusDecoder,
    build_aspp,
    build_encoder,
    check_deeplab_options,
)
from dualseg.models.baselines.unet import DECODER_UP_MODES, UNetDecoder, UNetEncoder
from dualseg.models.blocks.conv import init_weights
from dualseg.models.ds2f.model import DS2FBackbone
from dualseg.models.options import check_channels, check_choice


class FinalFeatures(nn.Module):
    """A stream decoder from a baseline decoder that returns a list of feature maps (``EncoderDecoderModel``'s
    ``decode`` contract): runs it (``stages``) and returns item 0, the final features."""

    def __init__(self, stages: nn.Module) -> None:
        super().__init__()
        self.stages = stages

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.stages(feats)[0]


class EncoderDecoderBackbone(DS2FBackbone):
    """A DS2F backbone from parts: ``encoder`` (shared by the streams), ``make_decoder()`` building a new
    initialised decoder per call (``decoder(feats) -> (N, decoder_channels, h, w)``), the network's
    ``size_divisor`` and ``channels``, the encoder's widths per level, finest first."""

    def __init__(
        self,
        encoder: nn.Module,
        make_decoder: Callable[[], nn.Module],
        decoder_channels: int,
        size_divisor: int,
        channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.encoder = encoder
        self.new_decoder = make_decoder
        self.decoder_channels = decoder_channels
        self.size_divisor = size_divisor

    def encode(self, x: torch.Tensor) -> object:
        return self.encoder(x)

    def make_decoder(self) -> nn.Module:
        return self.new_decoder()


class SharedASPPBackbone(EncoderDecoderBackbone):
    """DeepLabV3+ as the DS2F code splits it: encoder and ASPP shared, ``encode`` -> (stride-4 features, ASPP
    output); each stream's decoder is the rest of ``DeepLabV3PlusDecoder``."""

    def __init__(self, encoder: nn.Module, aspp: nn.Module, decoder_channels: int, output_stride: int) -> None:
        low_ch = encoder.feature_info.channels()[0]

        def make_decoder() -> nn.Module:
            return init_weights(DeepLabV3PlusDecoder(low_ch, decoder_channels, aspp=None))

        super().__init__(encoder, make_decoder, decoder_channels, output_stride, encoder.feature_info.channels())
        self.aspp = aspp

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = self.encoder(x)
        return low, self.aspp(high)


def unet_backbone(
    in_channels: int = 1,
    channels: Sequence[int] = (64, 128, 256, 512, 1024),
    norm: str | None = "batch",
    up_mode: str = "bilinear_1x1",
    align_corners: bool = False,
) -> EncoderDecoderBackbone:
    """The ``unet`` baseline's encoder with the DS2F code's 3x3 stride-2 padding-1 max-pools, and its decoder
    (``UNetDecoder``; ``up_mode`` also ``"bilinear_1x1"``, the code's bilinear x2 + 1x1 conv-norm-ReLU)."""
    chans = check_channels("ds2f_unet", channels)
    encoder = UNetEncoder(in_channels, chans, norm=norm)
    for stage in encoder.stages[1:]:
        stage[0] = nn.MaxPool2d(3, stride=2, padding=1)
    check_choice("up_mode", up_mode, DECODER_UP_MODES)

    def make_decoder() -> nn.Module:
        return FinalFeatures(init_weights(UNetDecoder(chans, norm, up_mode, align_corners=align_corners)))

    return EncoderDecoderBackbone(init_weights(encoder), make_decoder, chans[0], 2 ** (len(chans) - 1), chans)


def deeplabv3plus_backbone(
    in_channels: int = 1,
    encoder: str = "resnet50",
    pretrained: bool = False,
    pretrained_path: str | os.PathLike[str] | None = None,
    output_stride: int = 16,
    aspp_rates: Sequence[int] | None = None,
    decoder_channels: int = 256,
    aspp_dropout: float = 0.5,
) -> SharedASPPBackbone:
    """The ``deeplabv3plus`` baseline's timm encoder and ASPP (shared, as the DS2F code) and its decoder."""
    check_deeplab_options("ds2f_deeplabv3plus", output_stride, decoder_channels)
    trunk = build_encoder(in_channels, encoder, pretrained, pretrained_path, output_stride)
    high_ch = trunk.feature_info.channels()[1]
    aspp = init_weights(build_aspp(high_ch, decoder_channels, output_stride, aspp_rates, aspp_dropout))
    return SharedASPPBackbone(trunk, aspp, decoder_channels, output_stride)
