"""EFEN: an enhanced feature extraction network (Applied Sciences 2023, 13(12), 6977), with the ablation variants of
its Table 1: ``unet`` (U-Net on a VGG-19 encoder), ``unet_process1`` (+ feature re-extraction) and ``efen``
(+ improved skip connections)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from torchvision.models.vgg import VGG19_Weights, cfgs, make_layers

from dualseg.errors import DualsegError, did_you_mean
from dualseg.models.base import SegmentationModel
from dualseg.models.blocks import ConvNormAct, DoubleConv, init_weights
from dualseg.models.blocks.positional_skip import PositionalCrossAttentionSkip
from dualseg.models.options import check_channels
from dualseg.models.weights import load_exactly, read_weights_file
from dualseg.registry import MODELS

VARIANTS = ("unet", "unet_process1", "efen")
VGG19_STAGE_ENDS = (4, 9, 18, 27, 36)  # indices of the max-pools in torchvision's VGG-19 ``features``
VGG19_CHANNELS = (64, 128, 256, 512, 512)


class VGG19Encoder(nn.Module):
    """Eq. 1: the convolutional part of VGG-19 (Simonyan & Zisserman, 2015) cut before each max-pool, giving five
    maps at strides 1, 2, 4, 8, 16 (64, 128, 256, 512, 512 channels), as DoubleU-Net's skips (block1_conv2 ...
    block5_conv4). Parameter names follow torchvision/timm (``features.<i>.weight``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        layers = list(make_layers(cfgs["E"]).children())[: VGG19_STAGE_ENDS[-1]]
        if in_channels != 3:
            layers[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        start = 0
        for end in VGG19_STAGE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            feats.append(x)
            start = end
        return feats

    def load_vgg_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load the ``features.*`` tensors of a torchvision or timm VGG-19 state dict (classifier/head keys
        dropped; ``module.`` prefixes and a whole dualseg EFEN state dict, ``encoder.features.*``, are accepted).
        The first convolution is adapted to another input channel count as timm does."""
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if not any(k.startswith("features.") for k in state):
            state = {k.removeprefix("encoder."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if k.startswith("features.")}  # classifier / head keys dropped
        load_exactly(self, state, "efen", source, "VGG-19", "pass a VGG-19 (not VGG-19-BN) state dict",
                     first_conv="features.0.weight")


def load_vgg19_weights(encoder: VGG19Encoder, pretrained_path: str | os.PathLike[str] | None) -> None:
    """A local weights file (``.pth``/``.pt``/``.bin``/``.safetensors``; timm unwraps ``state_dict``/``model``
    checkpoint dicts), or torchvision's ImageNet weights
    (``VGG19_Weights.IMAGENET1K_V1``, downloaded or from the torch hub cache) when ``pretrained_path`` is None."""
    if pretrained_path is None:
        try:
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except OSError as e:  # URLError is an OSError: offline and not cached
            raise DualsegError(
                f"efen: could not fetch the ImageNet VGG-19 weights ({type(e).__name__}); when offline, download "
                "vgg19-dcbb9e9d.pth elsewhere and pass pretrained_path=<file>, or use pretrained=False"
            ) from e
        encoder.load_vgg_state(state, "torchvision's VGG19_Weights.IMAGENET1K_V1")
        return
    path = os.fspath(pretrained_path)
    state = read_weights_file(path, "efen")
    encoder.load_vgg_state(state, f"'{path}'")


def fusion_convs(in_ch: int, out_ch: int) -> nn.Sequential:
    """Psi_D1 / op_E2 / op_D2 (Eq. 2-4): two 3x3 and one 1x1 convolution, each with BN and ReLU."""
    return nn.Sequential(DoubleConv(in_ch, out_ch), ConvNormAct(out_ch, out_ch, 1))


class EFENDecoderStage(nn.Module):
    """One decoder step (Eq. 2 and 4): ``F_j = Psi(concat(Phi(F_{j-1}), skip))`` with Phi a 2x2 transposed
    convolution and the skip either the plain encoder feature (U-Net) or ``R(F_E, F_{j-1})`` (Eq. 5).

    The paper writes ``R(F_E, F_D_j)``; op1 halves F_E and op3 up-samples F_D, so the decoder input of R is the
    coarser map ``F_{j-1}`` (the text's "outputs of Phi(F_{l-1}) ... generate the weights" is read this way)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, improved: bool, attn_dim: int | None) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        self.skip = PositionalCrossAttentionSkip(skip_ch, in_ch, out_ch, attn_dim) if improved else None
        cat_ch = out_ch + skip_ch + (out_ch if improved else 0)
        self.fuse = fusion_convs(cat_ch, out_ch)

    def forward(self, y: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        s = skip if self.skip is None else self.skip(skip, y)
        return self.fuse(torch.cat([self.up(y), s], dim=1))


class EFENDecoder(nn.Module):
    """Four decoder stages from the stride-16 map to full resolution, skips from the VGG-19 maps at strides 8..1."""

    def __init__(self, bottom_ch: int, channels: Sequence[int], improved: bool, attn_dim: int | None) -> None:
        super().__init__()
        ins = (bottom_ch, *channels[:-1])
        skips = VGG19_CHANNELS[-2::-1]
        self.stages = nn.ModuleList(
            EFENDecoderStage(c_in, c_skip, c_out, improved, attn_dim)
            for c_in, c_skip, c_out in zip(ins, skips, channels)
        )

    def forward(self, y: torch.Tensor, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``skips`` finest first (strides 1, 2, 4, 8); returns the stage outputs at strides 8, 4, 2, 1."""
        outs = []
        for stage, skip in zip(self.stages, reversed(skips)):
            y = stage(y, skip)
            outs.append(y)
        return outs


class ReExtractionEncoder(nn.Module):
    """Eq. 3, the second encoder: ``F_E2_k = op_E2(Phi_E2(F_E2_{k-1}), F_D1_k)``.

    Stage 0 (stride 1) is ``DoubleConv`` on the fused input; stages 1-4 are max-pool + 3x3 conv (Phi_E2) followed
    by op_E2 (two 3x3 + one 1x1) on the concatenation with the first decoder's map of the same size (strides 2, 4, 8)
    and, at stride 16, with the first decoder's input (the VGG-19 bottom map, the decoder's stage 0)."""

    def __init__(self, in_ch: int, channels: Sequence[int], partner_channels: Sequence[int]) -> None:
        super().__init__()
        self.stem = DoubleConv(in_ch, channels[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvNormAct(c_in, c_out, 3))
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.fuse = nn.ModuleList(fusion_convs(c + p, c) for c, p in zip(channels[1:], partner_channels))

    def forward(self, x: torch.Tensor, partners: Sequence[torch.Tensor]) -> torch.Tensor:
        """``partners`` at strides 2, 4, 8, 16; returns the stride-16 map."""
        x = self.stem(x)
        for down, fuse, partner in zip(self.down, self.fuse, partners):
            x = fuse(torch.cat([down(x), partner], dim=1))
        return x


@MODELS.register("efen")
class EFEN(SegmentationModel):
    """EFEN (Applied Sciences 2023, 13(12), 6977, Sec. 3) and its Table 1 ablation variants.

    * ``variant="unet"``: VGG-19 encoder (Eq. 1), decoder of transposed convolutions and plain concatenated skips
      (Eq. 2 with R = identity), 1x1 classifier.
    * ``variant="unet_process1"``: + feature re-extraction: the first decoder's 1x1 classifier is dropped, its
      output is concatenated with the input image, a second encoder fuses each stage with the first decoder's
      map of the same size (Eq. 3) and a second decoder with skips from the VGG-19 encoder (Eq. 4) gives the output.
    * ``variant="efen"``: every skip (both decoders and the input fusion) is the improved skip connection
      ``PositionalCrossAttentionSkip`` (positional encoding + cross-attention, Eq. 5-9).

    Options:
        pretrained: load torchvision's ImageNet VGG-19 weights (needs network or the torch hub cache).
        pretrained_path: local VGG-19 weights file (torchvision or timm names) for offline use; overrides pretrained.
        decoder_channels: widths of the four stages of both decoders (strides 8, 4, 2, 1), DoubleU-Net's by default.
        encoder2_channels: widths of the second encoder at strides 1, 2, 4, 8, 16.
        attn_dim: ``d_k`` of every attention (V's channels); None = the encoder feature's channel count.
    H and W must be divisible by 16 (``size_divisor``). Output: ``{"seg": logits at the input size}``.
    """

    size_divisor = 16

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1,
        variant: str = "efen",
        pretrained: bool = False,
        pretrained_path: str | os.PathLike[str] | None = None,
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
        encoder2_channels: Sequence[int] = (32, 64, 128, 256, 256),
        attn_dim: int | None = None,
    ) -> None:
        super().__init__(in_channels, num_classes)
        if variant not in VARIANTS:
            raise DualsegError(
                f"efen: unknown variant '{variant}'{did_you_mean(str(variant), VARIANTS)}; choose one of {VARIANTS}"
            )
        dec = check_channels("efen", decoder_channels)
        enc2 = check_channels("efen", encoder2_channels)
        if len(dec) != 4 or len(enc2) != 5:
            raise DualsegError(
                f"efen: decoder_channels needs 4 widths (strides 8..1) and encoder2_channels 5 (strides 1..16), "
                f"got {dec} and {enc2}"
            )
        if attn_dim is not None and (isinstance(attn_dim, bool) or not isinstance(attn_dim, int) or attn_dim < 1):
            raise DualsegError(f"efen: attn_dim must be a positive integer or None, got {attn_dim!r}")
        self.variant = variant
        improved = variant == "efen"
        self.encoder = VGG19Encoder(in_channels)
        self.decoder1 = EFENDecoder(VGG19_CHANNELS[-1], dec, improved, attn_dim)
        if variant == "unet":
            self.input_skip = self.encoder2 = self.decoder2 = None
        else:
            self.input_skip = (
                PositionalCrossAttentionSkip(in_channels, dec[-1], dec[-1], attn_dim, dec_scale=1) if improved else None
            )
            fused_ch = in_channels + dec[-1]  # concat(x, D1 output) or R(x, D1 output), Eq. 5
            partners = (*dec[-2::-1], VGG19_CHANNELS[-1])  # first decoder at strides 2, 4, 8; its input at 16
            self.encoder2 = ReExtractionEncoder(fused_ch, enc2, partners)
            self.decoder2 = EFENDecoder(enc2[-1], dec, improved, attn_dim)
        self.head = nn.Conv2d(dec[-1], num_classes, 1)
        init_weights(self)
        self.head.reset_parameters()  # PyTorch's fan-in default: logits start near 0, not at std ~5 (fan-out, 1 class)
        if pretrained or pretrained_path is not None:
            load_vgg19_weights(self.encoder, pretrained_path)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        feats = self.encoder(x)
        d1 = self.decoder1(feats[-1], feats[:-1])
        if self.encoder2 is None or self.decoder2 is None:
            return {"seg": self.head(d1[-1])}
        fused = torch.cat([x, d1[-1]], dim=1) if self.input_skip is None else self.input_skip(x, d1[-1])
        bottom = self.encoder2(fused, [d1[2], d1[1], d1[0], feats[-1]])
        d2 = self.decoder2(bottom, feats[:-1])
        return {"seg": self.head(d2[-1])}
