"""DRFL: Dual-stream Representation Fusion Learning (Xu et al., EAAI 2023, doi:10.1016/j.engappai.2023.106402)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.base import SegmentationModel, nearest_valid
from dualseg.models.blocks.conv import DoubleConv, init_weights, make_norm
from dualseg.models.blocks.pfam import PFA_MODES, PeakinessFusionAttention, PFAMBlock
from dualseg.models.blocks.transformer import PatchEmbed, TransformerBlock, Unpatchify, resample_pos_embed
from dualseg.models.blocks.upsample import UpConv
from dualseg.models.options import check_channels, check_choice, check_dropout, check_positive_int
from dualseg.registry import MODELS


@dataclass(frozen=True)
class DRFLVariant:
    """Which modules a DRFL variant has (Tables 5-8)."""

    sr: bool  # super-resolution stream (SRS)
    rftm: bool  # Representation Fusion Transformer Module (Eq. 8-13)
    fusion: bool  # Fusion Module (Eq. 6)
    attention: str  # attention inside every encoder/decoder PFAM block: "pfam", "cbam" or "none"


VARIANTS: dict[str, DRFLVariant] = {
    "ss": DRFLVariant(sr=False, rftm=False, fusion=False, attention="none"),
    "ss_srs": DRFLVariant(sr=True, rftm=False, fusion=False, attention="none"),
    "ss_srs_rftm": DRFLVariant(sr=True, rftm=True, fusion=False, attention="none"),
    "dfm": DRFLVariant(sr=True, rftm=False, fusion=True, attention="none"),
    "dfm_rftm": DRFLVariant(sr=True, rftm=True, fusion=True, attention="none"),
    "drfl": DRFLVariant(sr=True, rftm=True, fusion=True, attention="pfam"),
    "drfl_cbam": DRFLVariant(sr=True, rftm=True, fusion=True, attention="cbam"),
}

# Sizes and the Eq. 9 head input per preset (docs/drfl.md, "Presets"). "paper": the one-RFTL reading of Sec. 4
# ("the number of Weighted Multi-Head Attention Layer is 12, the hidden layer dimension is 768, and we only use one
# Representation Fusion Transformer Layer"): every RFTL of Eq. 8 is the single layer of Eq. 10-13 (Z_0 -> Z_1),
# 768-d with 12 attention heads, and the seg head sees Concat(H_fusion x F_sr, F_seg) as in Eq. 9. "released":
# the authors' code, 12 stacked 768-d blocks in every RFTL and the stem feature e0 added to the head input.
# "light": CPU-sized, the layout that docs/drfl.md's measurements used.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "widths": (64, 128, 256, 512, 512),
        "rftm_dim": 768,
        "rftm_depth": 1,
        "rftm_heads": 12,
        "rftm_mlp_ratio": 4.0,
        "rftm_patch": 16,
        "fusion_width": 64,
        "stem_skip": False,
    },
    "released": {
        "widths": (64, 128, 256, 512, 512),
        "rftm_dim": 768,
        "rftm_depth": 12,
        "rftm_heads": 12,
        "rftm_mlp_ratio": 4.0,
        "rftm_patch": 16,
        "fusion_width": 64,
        "stem_skip": True,
    },
    "light": {
        "widths": (16, 32, 64, 128, 128),
        "rftm_dim": 96,
        "rftm_depth": 2,
        "rftm_heads": 4,
        "rftm_mlp_ratio": 2.0,
        "rftm_patch": 8,
        "fusion_width": 16,
        "stem_skip": True,
    },
}
FUSION_MODES = ("paper", "code")


class EncodeStage(nn.Sequential):
    """``PFAMBlock(in) -> Conv4x4 stride 2 (in -> out) -> InstanceNorm(affine) -> LeakyReLU(0.2)``: H -> H/2.

    ``pfa`` holds the PFAMBlock's ``pfa_mode``/``pfa_pool``/``pfa_kernel``."""

    def __init__(self, in_ch: int, out_ch: int, attention: str, pfa: dict[str, Any]) -> None:
        super().__init__(
            PFAMBlock(in_ch, attention, **pfa),
            nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
            make_norm("instance", out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )


class DecodeStage(nn.Sequential):
    """``PFAMBlock(in) -> ConvTranspose4x4 stride 2 (in -> out) -> InstanceNorm(affine) -> PReLU [-> Dropout]``."""

    def __init__(self, in_ch: int, out_ch: int, attention: str, pfa: dict[str, Any], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            PFAMBlock(in_ch, attention, **pfa),
            nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False),
            make_norm("instance", out_ch),
            nn.PReLU(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class DRFLDecoder(nn.Module):
    """U-Net-style decoder of one stream: from the bottleneck ``e[-1]`` up to ``widths[0]`` channels at H/2.

    Stage 0 decodes ``e[-1]`` (with dropout); stage j >= 1 decodes ``concat(previous output, e[-1-j])``.
    """

    def __init__(self, widths: Sequence[int], attention: str, pfa: dict[str, Any], dropout: float) -> None:
        super().__init__()
        depth = len(widths) - 1
        stages = [DecodeStage(widths[depth], widths[depth - 1], attention, pfa, dropout)]
        for level in reversed(range(1, depth)):  # skip e[level] joins before decoding to level - 1
            stages.append(DecodeStage(2 * widths[level], widths[level - 1], attention, pfa))
        self.stages = nn.ModuleList(stages)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        y = self.stages[0](feats[-1])
        for j, stage in enumerate(self.stages[1:], start=1):
            y = stage(torch.cat([y, feats[-1 - j]], dim=1))
        return y


class RFTL(nn.Module):
    """Representation Fusion Transformer Layer (Eq. 10-13, Fig. 3).

    ``F_out = Unpatchify(LN(Blocks(PatchEmbed(F_in) + E_pos))) + Conv3x3_d6(F_in) + Conv3x3_d12(F_in)``.
    ``cross=True``: every block is a cross-attention block whose keys/values come from ``PatchEmbed(context) +
    E_pos_context`` (the same patch embedding, its own position embedding); the dilated residual is applied to
    the query input ``F_in``. Position embeddings are built for a ``grid`` and resampled bicubically for others.
    """

    def __init__(
        self,
        channels: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        patch: int,
        grid: tuple[int, int],
        drop: float,
        learnable_weights: bool,
        cross: bool = False,
    ) -> None:
        super().__init__()
        self.cross = cross
        self.grid = grid
        self.embed = PatchEmbed(channels, dim, patch)
        self.pos = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
        self.pos_context = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim)) if cross else None
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, drop, learnable_weights=learnable_weights, cross=cross)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.unpatchify = Unpatchify(dim, channels, patch)
        self.dilated6 = nn.Conv2d(channels, channels, 3, padding=6, dilation=6)
        self.dilated12 = nn.Conv2d(channels, channels, 3, padding=12, dilation=12)

    def _tokens(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens, grid = self.embed(x)
        return tokens + resample_pos_embed(pos, self.grid, grid), grid

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        tokens, grid = self._tokens(x, self.pos)
        ctx = None
        if self.pos_context is not None:
            if context is None:
                raise DualsegError("a cross RFTL needs a context (the key/value feature map)")
            ctx, _ = self._tokens(context, self.pos_context)
        for block in self.blocks:
            tokens = block(tokens, ctx)
        return self.unpatchify(self.norm(tokens), grid) + self.dilated6(x) + self.dilated12(x)


class RFTM(nn.Module):
    """Representation Fusion Transformer Module (Eq. 8): ``H_seg = RFTL(F_seg)``, ``H_sr = RFTL(F_sr)`` with one
    shared self-attention RFTL, then ``H_fusion = RFTL_cross(query H_sr, key/value H_seg)``; returns ``H_fusion``
    (same shape as ``F_sr``)."""

    def __init__(self, channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.self_rftl = RFTL(channels, cross=False, **kwargs)
        self.cross_rftl = RFTL(channels, cross=True, **kwargs)

    def forward(self, f_seg: torch.Tensor, f_sr: torch.Tensor) -> torch.Tensor:
        h_seg = self.self_rftl(f_seg)
        h_sr = self.self_rftl(f_sr)
        return self.cross_rftl(h_sr, context=h_seg)


def _probabilities(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sigmoid for one class, softmax over classes otherwise."""
    return torch.sigmoid(logits) if num_classes == 1 else torch.softmax(logits, dim=1)


class FusionModule(nn.Module):
    """The Fusion Module (Sec. 3.1.3, Eq. 6): a small 3-level U-Net refining the segmentation-stream output.

    Input: ``concat(probabilities of p_bin, LeakyReLU(Conv3x3 stride 2 (p_sr)))`` at H (sigmoid for one class,
    softmax otherwise; the stride-2 convolution brings the 2H SR image to H with ``width`` channels). Body:
    ``DoubleConv(width)`` (3x3 convolutions, instance norm) at H, H/2 and H/4 with max-pool down and transposed
    up-convolutions, Dropout at the H/4 bottleneck ("dropout in the middle layer"), 1x1 conv to the logits.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int, dropout: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.sr_down = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.enc1 = DoubleConv(num_classes + width, width, norm="instance")
        self.enc2 = DoubleConv(width, width, norm="instance")
        self.bottom = DoubleConv(width, width, norm="instance")
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up2 = UpConv(width, width, mode="transpose")
        self.dec2 = DoubleConv(2 * width, width, norm="instance")
        self.up1 = UpConv(width, width, mode="transpose")
        self.dec1 = DoubleConv(2 * width, width, norm="instance")
        self.out = nn.Conv2d(width, num_classes, 1)

    def forward(self, seg_logits: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1(torch.cat([_probabilities(seg_logits, self.num_classes), self.sr_down(sr)], dim=1))
        f2 = self.enc2(F.max_pool2d(f1, 2))
        b = self.drop(self.bottom(F.max_pool2d(f2, 2)))
        d2 = self.dec2(torch.cat([f2, self.up2(b)], dim=1))
        d1 = self.dec1(torch.cat([f1, self.up1(d2)], dim=1))
        return self.out(d1)


class CodeFusionModule(nn.Module):
    """The Fusion Module as the authors' release builds it (``fusion_mode="code"``; A2 of the design notes).

    ``f0 = Concat(LeakyReLU_0.2(Conv4x4/2 (p_sr) -> width - num_classes channels), probabilities of p_bin)`` at H
    (bias-free convolution); four ``EncodeStage(width -> width)`` down to H/16; a ``DRFLDecoder`` of four
    ``DecodeStage`` back to H (dropout on the first, skips H/8, H/4, H/2); ``Concat(., f0)``; a 3x3 stride-1
    transposed convolution (with bias) to the logits. PFAM blocks follow the variant's ``attention``/``pfa``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int, dropout: float, attention: str, pfa: dict[str, Any]
    ) -> None:
        super().__init__()
        if width <= num_classes:
            raise DualsegError(f"DRFL: fusion_width {width} must exceed num_classes {num_classes} (fusion_mode code)")
        self.num_classes = num_classes
        widths = (width,) * 5
        self.sr_down = nn.Sequential(
            nn.Conv2d(in_channels, width - num_classes, 4, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2)
        )
        self.encoder = nn.ModuleList(EncodeStage(width, width, attention, pfa) for _ in range(4))
        self.decoder = DRFLDecoder(widths, attention, pfa, dropout)
        self.out = nn.ConvTranspose2d(2 * width, num_classes, 3, padding=1)

    def forward(self, seg_logits: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        feats = [torch.cat([self.sr_down(sr), _probabilities(seg_logits, self.num_classes)], dim=1)]
        for stage in self.encoder:
            feats.append(stage(feats[-1]))
        return self.out(torch.cat([self.decoder(feats), feats[0]], dim=1))


@MODELS.register("drfl")
class DRFL(SegmentationModel):
    """DRFL (Xu, Wang, Xu et al., "Dual-stream Representation Fusion Learning for accurate medical image
    segmentation", Engineering Applications of Artificial Intelligence 123, 2023, 106402).

    A shared encoder feeds a segmentation stream and a super-resolution (SR) stream (Sec. 3.1); the
    Representation Fusion Transformer Module (RFTM, Eq. 8-13) lets the SR features guide the segmentation head
    (Eq. 9); a Fusion Module (Eq. 6) refines ``concat(p_bin, p_sr)`` into the final mask; Peakiness Fusion
    Attention Modules (PFAM, Eq. 14-15) sit in every encoder/decoder stage.

    Layout (widths ``w0..w4``; A2 of the design notes where the paper is silent): stem Conv4x4/2 + LeakyReLU(0.2)
    -> e0 (w0 @ H/2); four ``EncodeStage`` (PFAM block, Conv4x4/2, InstanceNorm, LeakyReLU 0.2) -> e1..e4 (@ H/4
    .. H/32); each stream's decoder: four ``DecodeStage`` (PFAM block, ConvTranspose4x4/2, InstanceNorm, PReLU,
    dropout on the first) with skips e3, e2, e1 -> F_seg / F_sr (w0 @ H/2). SR head: ``DecodeStage(concat(F_sr,
    e0))`` -> ConvTranspose4x4/2 -> ``in_channels`` @ 2H. Seg head: ConvTranspose4x4/2 of ``concat(F_seg, e0)``,
    or with RFTM of ``concat(H_fusion * F_sr, F_seg)`` (Eq. 9; ``stem_skip=True`` appends e0 as the released
    code does) -> ``num_classes`` logits @ H.

    Variants (``variant``; Tables 5-8; "none" = PFAM blocks are two plain convolutions + residual):

    =============== ==== ==== ==== ========= ==================================================
    variant         SRS  RFTM FM   attention outputs
    =============== ==== ==== ==== ========= ==================================================
    ``ss``          -    -    -    none      seg
    ``ss_srs``      yes  -    -    none      seg, sr
    ``ss_srs_rftm`` yes  yes  -    none      seg, sr (Table 6 "SS + SRS + RFTM")
    ``dfm``         yes  -    yes  none      seg (FM), seg_stream, sr
    ``dfm_rftm``    yes  yes  yes  none      seg (FM), seg_stream, sr
    ``drfl``        yes  yes  yes  pfam      seg (FM), seg_stream, sr (the full model)
    ``drfl_cbam``   yes  yes  yes  cbam      seg (FM), seg_stream, sr (Table 7 "DFM + RFTM + CBAM")
    =============== ==== ==== ==== ========= ==================================================

    Outputs (train and eval alike): ``"seg"`` = final logits (N, num_classes, H, W) -- the Fusion Module's when the
    variant has one, else the segmentation stream's; ``"seg_stream"`` = p_bin logits (only with a Fusion Module,
    supervised by Eq. 1 inside Eq. 5); ``"sr"`` = SR image (N, in_channels, 2H, 2W) with a linear output: its
    target is the high-resolution image normalised the same way as the input (no sigmoid).

    Presets (``PRESETS``): ``"paper"`` (widths 64-128-256-512-512; each RFTL one 768-d block with 12 heads and
    MLP 3072 -- Sec. 4 "we only use one Representation Fusion Transformer Layer", Eq. 11-12 define one layer;
    16x16 patches on the H/2 map = 8x8 tokens at 256 px; fusion width 64; Eq. 9 head without e0),
    ``"released"`` (the authors' code: 12 blocks per RFTL, e0 in the head) and ``"light"`` (16-32-64-128-128,
    96-d, 2 layers, 4 heads, MLP 192, 8x8 patches, fusion width 16, e0 in the head). Keyword options override
    single entries: ``widths``, ``rftm_dim``, ``rftm_depth``, ``rftm_heads``, ``rftm_mlp_ratio``, ``rftm_patch``,
    ``fusion_width``, ``stem_skip``; and ``rftm_dropout`` (0.1, MLP/projection dropout),
    ``learnable_qkv_weights``, ``pfa_mode``, ``pfa_pool`` (``global``/``local``, Eq. 14), ``pfa_kernel`` (local
    window, 3), ``fusion_mode`` (``paper``/``code``), ``shared_decoder``, ``img_size`` (size the position
    embeddings are built for; other sizes resample them bicubically), ``dropout`` (first decoder stage and Fusion
    Module bottleneck).

    Size rule: H and W divisible by ``size_divisor`` = ``2 ** len(widths)`` (32: five stride-2 stages), or with
    RFTM ``lcm(2 ** len(widths), 2 * rftm_patch)`` (the H/2 map must split into patches); and the H/32 x W/32
    bottleneck must hold at least 2 pixels (instance normalisation), so 32x32 is too small, 32x64 or 64x64 work.

    Paper vs the authors' released code (A5 of the design notes) and what dualseg does:

    1. Streams: paper = separate seg and SR decoders on a shared encoder; code = one decoder called twice.
       dualseg: separate (default); ``shared_decoder=True`` reuses the seg decoder (code).
    2. Weighted MHA gates: paper = learnable; code = frozen at 0.1. dualseg: learnable (default);
       ``learnable_qkv_weights=False`` freezes them (code).
    3. Cross-attention: paper = query from H_sr, key/value from H_seg; code = query and key from SR, value from
       seg, residual on the seg tokens. dualseg: paper (residual and MLP on the SR/query tokens).
    4. Dilated residual (Eq. 13): code = 1x1 convolutions whose dilation has no effect. dualseg: two real 3x3
       convolutions with dilation 6 and 12 (padding = dilation), summed, channel-preserving.
    5. PFA peak map: paper = F - spatial avgpool(F), concat with F; code = F - channel mean, concat with the
       channel mean. dualseg: paper (default); ``pfa_mode="code"``.
    6. Fusion Module: paper = "like the seg stream but simpler, 64 3x3 filters, dropout in the middle layer";
       code = 4-level U-Net of 4x4 stride-2 convs with PFAM blocks on 63 SR channels + the mask. dualseg: the
       3-level ``FusionModule`` above (3x3 DoubleConv blocks of ``fusion_width``, dropout at the bottleneck), fed
       with the p_bin probabilities and the SR image brought to H by a stride-2 3x3 convolution;
       ``fusion_mode="code"``: :class:`CodeFusionModule` (the code's layout).
    7. MLP activation: paper = GELU; code = ReLU. dualseg: GELU.
    8. Loss weights (code 1 L1 : 10 seg : 10 fusion, config lambdas unused): not part of the model; the DRFL loss
       reads ``"sr"``, ``"seg_stream"`` and ``"seg"`` (Eq. 5-7).
    9. SR target: code ends the SR head in a sigmoid while its target is in [-1, 1] (a bug). dualseg: linear SR
       output regressed onto the normalised HR (teacher) image; teacher images are supplied by the data pipeline.
    10. Token -> map: code = a raw reshape of the tokens into a 3-channel map. dualseg: learned ``Unpatchify``
        (ConvTranspose2d, kernel = stride = patch) back to ``w0`` channels; H_fusion has F_sr's channels.

    Further choices: the cross RFTL embeds query and key/value maps with one shared patch embedding and two
    position embeddings (as the code) and normalises the context with its own LayerNorm (code: the query's); the
    Fusion Module uses instance norm (batch-1 friendly, like the streams' stages); the code's sigmoid heads are
    logits here; the code's fixed 256 px input is any valid size;
    the RFTM has a final LayerNorm (code) and no position-embedding dropout; linear layers keep PyTorch's default
    init (std 1/sqrt(3 fan_in), 0.021 at 768 inputs, close to the code's N(0, 0.02)), position embeddings are
    truncated-normal (std 0.02; code: zeros), convolutions Kaiming (as the other dualseg models).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        variant: str = "drfl",
        preset: str = "paper",
        widths: Sequence[int] | None = None,
        rftm_dim: int | None = None,
        rftm_depth: int | None = None,
        rftm_heads: int | None = None,
        rftm_mlp_ratio: float | None = None,
        rftm_patch: int | None = None,
        fusion_width: int | None = None,
        stem_skip: bool | None = None,
        rftm_dropout: float = 0.1,
        learnable_qkv_weights: bool = True,
        pfa_mode: str = "paper",
        pfa_pool: str = "global",
        pfa_kernel: int = 3,
        fusion_mode: str = "paper",
        shared_decoder: bool = False,
        img_size: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, num_classes)
        check_choice("variant", variant, VARIANTS, "DRFL")
        check_choice("preset", preset, PRESETS, "DRFL")
        # pfa_mode is checked here too: variants without PFAM never build the attention
        check_choice("pfa_mode", pfa_mode, PFA_MODES, "DRFL")
        PeakinessFusionAttention(1, pfa_mode, pfa_pool, pfa_kernel)  # the same checks for pfa_pool / pfa_kernel
        check_choice("fusion_mode", fusion_mode, FUSION_MODES, "DRFL")
        cfg = dict(PRESETS[preset])
        given = {
            "widths": widths,
            "rftm_dim": rftm_dim,
            "rftm_depth": rftm_depth,
            "rftm_heads": rftm_heads,
            "rftm_mlp_ratio": rftm_mlp_ratio,
            "rftm_patch": rftm_patch,
            "fusion_width": fusion_width,
            "stem_skip": stem_skip,
        }
        cfg.update({k: v for k, v in given.items() if v is not None})
        self.variant, self.preset = variant, preset
        self.spec = spec = VARIANTS[variant]
        self.widths = w = check_channels("DRFL", cfg["widths"])
        if len(w) < 3:
            raise DualsegError(f"DRFL: widths needs at least 3 entries (stem + 2 encoder stages), got {w!r}")
        dropout = check_dropout("DRFL", dropout)
        rftm_dropout = check_dropout("DRFL", rftm_dropout)
        patch = check_positive_int("rftm_patch", cfg["rftm_patch"], "DRFL")
        dim = check_positive_int("rftm_dim", cfg["rftm_dim"], "DRFL")
        heads = check_positive_int("rftm_heads", cfg["rftm_heads"], "DRFL")
        depth = check_positive_int("rftm_depth", cfg["rftm_depth"], "DRFL")
        fusion_w = check_positive_int("fusion_width", cfg["fusion_width"], "DRFL")
        mlp_ratio = float(cfg["rftm_mlp_ratio"])
        if mlp_ratio <= 0:
            raise DualsegError(f"DRFL: rftm_mlp_ratio must be > 0, got {mlp_ratio}")
        if dim % heads:
            raise DualsegError(f"DRFL: rftm_dim {dim} must be divisible by rftm_heads {heads}")
        self.stem_skip = bool(cfg["stem_skip"])
        self.config = {**cfg, "widths": w}

        self.size_divisor = 2 ** len(w)
        if spec.rftm:
            self.size_divisor = math.lcm(self.size_divisor, 2 * patch)
        check_positive_int("img_size", img_size, "DRFL")
        if img_size % self.size_divisor:
            raise DualsegError(
                f"DRFL: img_size {img_size} must be divisible by {self.size_divisor}; "
                f"nearest valid: {nearest_valid(img_size, self.size_divisor)}"
            )
        self.img_size = img_size
        att = spec.attention
        pfa = {"pfa_mode": pfa_mode, "pfa_pool": pfa_pool, "pfa_kernel": pfa_kernel}

        self.stem = nn.Sequential(nn.Conv2d(in_channels, w[0], 4, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2))
        self.encoder = nn.ModuleList(EncodeStage(w[i], w[i + 1], att, pfa) for i in range(len(w) - 1))
        self.seg_decoder = DRFLDecoder(w, att, pfa, dropout)
        self.shared_decoder = bool(shared_decoder)
        self.sr_decoder = DRFLDecoder(w, att, pfa, dropout) if spec.sr and not shared_decoder else None
        self.sr_head = (
            nn.Sequential(
                DecodeStage(2 * w[0], 2 * w[0], att, pfa),
                nn.ConvTranspose2d(2 * w[0], in_channels, 4, stride=2, padding=1),
            )
            if spec.sr
            else None
        )
        grid = (img_size // 2 // patch, img_size // 2 // patch)
        self.rftm = (
            RFTM(
                w[0],
                dim=dim,
                depth=depth,
                heads=heads,
                mlp_ratio=mlp_ratio,
                patch=patch,
                grid=grid,
                drop=rftm_dropout,
                learnable_weights=learnable_qkv_weights,
            )
            if spec.rftm
            else None
        )
        head_in = (3 if spec.rftm and self.stem_skip else 2) * w[0]
        self.seg_head = nn.ConvTranspose2d(head_in, num_classes, 4, stride=2, padding=1)
        self.fusion_mode = fusion_mode
        self.fusion: nn.Module | None = None
        if spec.fusion and fusion_mode == "code":
            self.fusion = CodeFusionModule(in_channels, num_classes, fusion_w, dropout, att, pfa)
        elif spec.fusion:
            self.fusion = FusionModule(in_channels, num_classes, fusion_w, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights(self)
        for m in self.modules():
            if isinstance(m, RFTL):
                nn.init.trunc_normal_(m.pos, std=0.02)
                if m.pos_context is not None:
                    nn.init.trunc_normal_(m.pos_context, std=0.02)

    def check_input(self, x: torch.Tensor) -> None:
        """The base size rule, plus: the H/32 bottleneck must hold more than one pixel (instance norm)."""
        super().check_input(x)
        bottom = 2 ** len(self.widths)
        if (x.shape[-2] // bottom) * (x.shape[-1] // bottom) < 2:
            raise DualsegError(
                f"DRFL needs an input larger than {bottom}x{bottom} (its H/{bottom} bottleneck would be 1x1, where "
                f"instance normalisation is undefined), got {x.shape[-2]}x{x.shape[-1]}; "
                f"use e.g. {2 * bottom}x{2 * bottom}"
            )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        feats = [self.stem(x)]
        for stage in self.encoder:
            feats.append(stage(feats[-1]))
        e0 = feats[0]
        f_seg = self.seg_decoder(feats)
        out: dict[str, torch.Tensor] = {}
        sr = None
        f_sr = None
        if self.sr_head is not None:
            decoder = self.seg_decoder if self.sr_decoder is None else self.sr_decoder
            f_sr = decoder(feats)
            sr = self.sr_head(torch.cat([f_sr, e0], dim=1))
        if self.rftm is not None and f_sr is not None:
            h_fusion = self.rftm(f_seg, f_sr)  # Eq. 8
            head_in = [h_fusion * f_sr, f_seg, e0] if self.stem_skip else [h_fusion * f_sr, f_seg]
            p_bin = self.seg_head(torch.cat(head_in, dim=1))  # Eq. 9
        else:
            p_bin = self.seg_head(torch.cat([f_seg, e0], dim=1))
        if self.fusion is not None and sr is not None:
            out["seg"] = self.fusion(p_bin, sr)
            out["seg_stream"] = p_bin
        else:
            out["seg"] = p_bin
        if sr is not None:
            out["sr"] = sr
        return out
