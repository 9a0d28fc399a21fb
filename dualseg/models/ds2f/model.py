"""DS2F: Dual-Stream Shared Feature framework (Qiu, Hu, Chen, Zeng, Hu & Liu, "Rethinking Dual-Stream
Super-Resolution Semantic Learning in Medical Image Segmentation", IEEE TPAMI 2023, doi:10.1109/TPAMI.2023.3322735).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.base import SegmentationModel
from dualseg.models.blocks.conv import init_weights
from dualseg.models.blocks.ds2f import (
    CONTEXTS,
    FIM,
    GATES,
    MAF,
    MSCONV_BRANCHES,
    MultiScaleCrossGate,
)
from dualseg.models.options import check_choice, check_positive_int, check_positive_ints, is_positive_int

SFEMS = ("mscg", "none", "fim", "maf")


class DS2FBackbone(nn.Module):
    """What ``DS2F`` needs from a backbone: ``encode(x) -> feats`` (anything the decoders accept), ``make_decoder()``
    returning a NEW decoder module on every call with ``decoder(feats) -> (N, decoder_channels, h, w)`` at the input
    resolution or below it, the int ``decoder_channels`` and ``size_divisor`` (H and W must be divisible by it)."""

    size_divisor: int = 1
    decoder_channels: int = 0

    def encode(self, x: torch.Tensor) -> Any:
        raise NotImplementedError

    def make_decoder(self) -> nn.Module:
        raise NotImplementedError


class ESPCNHead(nn.Sequential):
    """The SR head (code ``sr_module``, ESPCN-like, Shi et al. CVPR 2016): Conv5x5 ``in -> mid[0]`` -> tanh ->
    Conv3x3 ``-> mid[1]`` -> tanh -> Conv3x3 ``-> scale^2 * out_ch`` -> PixelShuffle(scale). Bias-free convolutions
    and a linear output, as the code (the SR target is the HR image normalised like the input)."""

    def __init__(self, in_ch: int, out_ch: int, scale: int, mid: Sequence[int] = (64, 32)) -> None:
        m0, m1 = mid
        super().__init__(
            nn.Conv2d(in_ch, m0, 5, padding=2, bias=False),
            nn.Tanh(),
            nn.Conv2d(m0, m1, 3, padding=1, bias=False),
            nn.Tanh(),
            nn.Conv2d(m1, scale * scale * out_ch, 3, padding=1, bias=False),
            nn.PixelShuffle(scale),
        )


class DS2F(SegmentationModel):
    """DS2F (Qiu et al., TPAMI 2023): a shared encoder, a segmentation decoder and a super-resolution (SR) decoder
    (Eq. 1-5), and a Shared Feature Extraction Module (SFEM) whose fused features feed the proxy task (Eq. 7, 13-14,
    17). The network sees a low-resolution (LR) image ``(N, C, H, W)`` and predicts at ``upscale`` times its size.

    Layout: ``feats = backbone.encode(x)``; ``F_seg = seg_decoder(feats)``, ``F_sr = sr_decoder(feats)`` (two
    decoders built by ``backbone.make_decoder()``, separate weights); seg head = 1x1 conv -> logits, bilinearly
    upsampled to the LR size when the decoder works below it, then bilinearly x ``upscale`` (Fig. 4's "+Inter");
    SR head = ``ESPCNHead`` on ``F_sr`` (bilinearly brought to the LR size first if needed) -> ``(N, C, rH, rW)``;
    SFEM between ``F_seg`` and ``F_sr`` at the decoder resolution.

    Outputs. Training: ``"seg"`` (HR logits of the plain segmentation stream, Eq. 4 / 15), ``"sr"`` (HR image of the
    plain SR stream, Eq. 5 / 16), ``"proxy_seg"`` and ``"proxy_sr"`` (``O_fuseg``, ``O_fusr`` of Eq. 13-14: the fused
    features through the SAME heads, targets = HR mask and HR image, Eq. 17). Eval: only the segmentation path
    runs (encoder -> seg decoder -> seg head -> upsampling) and only ``"seg"`` is returned, so the test-time cost
    is the plain backbone's (no SR decoder, SR head or SFEM). ``sr_stream=False``: the plain backbone with the
    bilinear x ``upscale`` (Fig. 4's "U-Net+Inter"), ``"seg"`` only. ``sfem="none"``: SR stream without an SFEM
    (Fig. 4's "+SR"): ``"seg"``, ``"sr"``. ``sfem="fim"``: ``"seg"``, ``"sr"``, ``"proxy_seg"`` (no fused SR image).

    Options:
        upscale: integer factor r >= 2 between the input and the outputs.
        sr_stream: build the SR decoder and head (training only).
        sfem: ``"mscg"`` (default with an SR stream; ``MultiScaleCrossGate``), ``"maf"`` (SS-MAF, on the decoder
            features like MSCG), ``"fim"`` (SuperVessel; on the HR outputs, where it works in its paper/code),
            ``"none"`` (default and only choice without an SR stream).
        hidden, reduction: MSCG width (32) and MRCAB reduction (4); ``hidden`` is also the MAF width.
        gate: ``"mrcab"`` (paper), ``"mrcab_gpool"``, ``"rcab"`` (Table IV). context: ``"msconv"`` (paper),
            ``"aspp"``, ``"self_attention"``, ``"none"`` (Table V). msconv_groups: k (4). msconv_branches: the
            MS-Conv components that are on, subset of ("conv1x1", "dilated", "pool"); msconv_disabled:
            ``"substitute"`` (Table VI's protocol) or ``"identity"`` for the ones that are off (see ``MSConv``).
        sr_head_channels: the two hidden widths of the ESPCN head (64, 32).
        msconv_pool_norm: MS-Conv's batch norm also over the image-pooling group (released code; see ``MSConv``).
        align_corners: of the bilinear upsampling of the heads (and of the U-Net decoder); True as the released
            code, False (default) as ordinary image resizing.

    Wrapping your own backbone: subclass ``DS2FBackbone`` (or duck-type it) and pass an instance::

        class TinyBackbone(DS2FBackbone):
            size_divisor = 4
            decoder_channels = 16

            def __init__(self, in_ch):
                super().__init__()
                self.enc = nn.Sequential(ConvNormAct(in_ch, 16, stride=2), ConvNormAct(16, 32, stride=2))

            def encode(self, x):
                return self.enc(x)  # (N, 32, H/4, W/4)

            def make_decoder(self):  # a fresh module per call: the two streams get separate weights
                return nn.Sequential(UpConv(32, 16, mode="bilinear", norm="batch", act="relu"))  # H/2

        model = DS2F(TinyBackbone(3), in_channels=3, num_classes=2, upscale=4)

    Paper vs the authors' released code (B7 of the design notes) and what dualseg does:

    1. MRCAB pooling: Nov. 2022 code = global-pool SE gate; Aug. 2023 code and the paper's text/Table IV best row =
       per-pixel gate. dualseg: per-pixel (``gate="mrcab"``); ``"mrcab_gpool"`` = the pooled variant, ``"rcab"`` =
       RCAN's RCAB (Table IV's first row).
    2. MS-Conv dilation: group 0 a 1x1 conv, group i (1..k-2) a depthwise 3x3 with dilation i (1, 2 for k = 4),
       group k-1 image pooling (code; the paper's "group index minus 1" counted from 1). dualseg: the same.
    3. Proxy heads: the main heads (shared weights, no extra parameters), as the code. dualseg: the same.
    4. SFEM placement: the last decoder level (64 channels at the LR size for the U-Net), hidden width 32 (code,
       "before=True"). dualseg: the same, for every backbone at its decoder output (stride 4 for DeepLabV3+).
    5. Inference: segmentation stream only, bilinear x r. dualseg: the same (eval FLOPs = the plain backbone's).
    6. Losses (code: SSIM with data_range 1 on [-1, 1] images; RMI on one-hot sigmoid outputs): not part of the
       model; the recipe's loss entries read ``"seg"``, ``"sr"``, ``"proxy_sr"``, ``"proxy_seg"``.
    7. Proxy targets: the fused segmentation against the HR mask, the fused SR image against the HR image; both
       proxy outputs are produced at the HR size. dualseg: the same.

    Further choices: the MSCG output is the code's ``Conv1x1(a * F) + F`` (the paper's Eq. 13-14 write
    ``GELU(Conv1x1(a * F))`` without the residual); inputs are concatenated (F_seg, F_sr) as Eq. 8 (code: SR first);
    bilinear upsampling uses ``align_corners=False`` (code: True; ``align_corners=True`` reproduces it), which
    matches HR/LR pairs made by ordinary image resizing; MS-Conv's batch norm leaves the image-pooling group out
    (code: over all groups; ``msconv_pool_norm=True`` reproduces it, see ``MSConv``); the SR head keeps PyTorch's
    default initialisation (as the code), the rest is Kaiming (as the other dualseg models). DeepLabV3+: the
    released code discards the fused segmentation feature (it recomputes ``proxy_seg`` from the unfused one); here
    ``proxy_seg`` comes from the fused feature.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_channels: int = 1,
        num_classes: int = 2,
        upscale: int = 2,
        sr_stream: bool = True,
        sfem: str | None = None,
        hidden: int = 32,
        reduction: int = 4,
        gate: str = "mrcab",
        context: str = "msconv",
        msconv_groups: int = 4,
        msconv_branches: Sequence[str] = MSCONV_BRANCHES,
        msconv_disabled: str = "substitute",
        sr_head_channels: Sequence[int] = (64, 32),
        msconv_pool_norm: bool = False,
        align_corners: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        name = type(self).__name__
        if not is_positive_int(upscale) or upscale < 2:
            raise DualsegError(f"{name}: upscale must be an integer >= 2, got {upscale!r}")
        missing = [a for a in ("encode", "make_decoder", "decoder_channels") if not hasattr(backbone, a)]
        if not isinstance(backbone, nn.Module) or missing:
            raise DualsegError(
                f"{name}: the backbone must be an nn.Module with encode(x), make_decoder() and decoder_channels "
                f"(see DS2FBackbone); missing: {', '.join(missing) or 'nn.Module'}"
            )
        ch = check_positive_int("backbone.decoder_channels", backbone.decoder_channels, name)
        mids = check_positive_ints("sr_head_channels", sr_head_channels, 2, name)
        sr_stream = bool(sr_stream)
        if sfem is None:
            sfem = "mscg" if sr_stream else "none"
        check_choice("sfem", sfem, SFEMS, "DS2F")
        if sfem != "none" and not sr_stream:
            raise DualsegError(f"{name}: sfem={sfem!r} needs the SR stream; use sr_stream=True or sfem='none'")
        check_choice("gate", gate, GATES, "DS2F")
        check_choice("context", context, CONTEXTS, "DS2F")

        self.upscale = upscale
        self.align_corners = bool(align_corners)
        self.sr_stream = sr_stream
        self.sfem_name = sfem
        self.size_divisor = int(getattr(backbone, "size_divisor", 1))
        self.backbone = backbone
        self.seg_decoder = backbone.make_decoder()
        self.seg_head = nn.Conv2d(ch, self.num_classes, 1)
        init_weights(self.seg_head)
        self.sr_decoder: nn.Module | None = None
        self.sr_head: nn.Module | None = None
        self.sfem: nn.Module | None = None
        if not sr_stream:
            return
        self.sr_decoder = backbone.make_decoder()
        if self.sr_decoder is self.seg_decoder or {id(p) for p in self.sr_decoder.parameters()} & {
            id(p) for p in self.seg_decoder.parameters()
        }:
            raise DualsegError(f"{name}: backbone.make_decoder() must build a new decoder (own weights) per call")
        self.sr_head = ESPCNHead(ch, self.in_channels, upscale, mids)
        if sfem == "mscg":
            self.sfem = MultiScaleCrossGate(
                ch,
                ch,
                hidden=hidden,
                reduction=reduction,
                gate=gate,
                context=context,
                msconv_groups=msconv_groups,
                msconv_branches=msconv_branches,
                msconv_disabled=msconv_disabled,
                msconv_pool_norm=msconv_pool_norm,
            )
        elif sfem == "maf":
            self.sfem = MAF(ch, ch, hidden=hidden)
        elif sfem == "fim":
            self.sfem = FIM(self.num_classes, self.in_channels)
        if self.sfem is not None:
            init_weights(self.sfem)

    def _seg_logits(self, f: torch.Tensor, lr_size: tuple[int, int]) -> torch.Tensor:
        """Seg head (Eq. 4): 1x1 conv, bilinear to the LR size if needed, then bilinear x upscale to the HR size."""
        y = self.seg_head(f)
        if tuple(y.shape[-2:]) != lr_size:
            y = F.interpolate(y, size=lr_size, mode="bilinear", align_corners=self.align_corners)
        hr = (lr_size[0] * self.upscale, lr_size[1] * self.upscale)
        return F.interpolate(y, size=hr, mode="bilinear", align_corners=self.align_corners)

    def _sr_image(self, f: torch.Tensor, lr_size: tuple[int, int]) -> torch.Tensor:
        """SR head (Eq. 5): bilinear to the LR size if needed, then the ESPCN head -> (N, in_channels, rH, rW)."""
        assert self.sr_head is not None
        if tuple(f.shape[-2:]) != lr_size:
            f = F.interpolate(f, size=lr_size, mode="bilinear", align_corners=self.align_corners)
        return self.sr_head(f)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        lr_size = x.shape[-2:]  # not int(): a trace keeps the size symbolic (TorchScript export at any size)
        feats = self.backbone.encode(x)  # Eq. 1
        f_seg = self.seg_decoder(feats)  # Eq. 2
        out = {"seg": self._seg_logits(f_seg, lr_size)}
        if not self.training or self.sr_decoder is None:
            return out
        f_sr = self.sr_decoder(feats)  # Eq. 3
        out["sr"] = self._sr_image(f_sr, lr_size)
        if isinstance(self.sfem, FIM):
            out["proxy_seg"] = self.sfem(out["seg"], out["sr"])
        elif self.sfem is not None:
            g_seg, g_sr = self.sfem(f_seg, f_sr)  # Eq. 8-12
            out["proxy_seg"] = self._seg_logits(g_seg, lr_size)  # Eq. 13
            out["proxy_sr"] = self._sr_image(g_sr, lr_size)  # Eq. 14
        return out

    @torch.no_grad()
    def predict_with_sr(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference with the SR image: ``{"seg", "sr"}`` of the plain streams (Eq. 4-5; encoder run once), for
        looking at what the SR stream learnt. ``forward`` in eval mode is untouched (segmentation only, the plain
        backbone's cost); this is a separate call. Raises a DualsegError for a model built without the SR stream."""
        if self.sr_decoder is None:
            raise DualsegError(f"{type(self).__name__} was built with sr_stream=False: it has no SR image to predict")
        self.check_input(x)
        lr_size = x.shape[-2:]  # not int(): a trace keeps the size symbolic (TorchScript export at any size)
        feats = self.backbone.encode(x)
        return {
            "seg": self._seg_logits(self.seg_decoder(feats), lr_size),
            "sr": self._sr_image(self.sr_decoder(feats), lr_size),
        }
