"""Shared Feature Extraction Modules (SFEMs) of DS2F (Qiu et al., "Rethinking Dual-Stream Super-Resolution Semantic
Learning in Medical Image Segmentation", TPAMI 2023, Sec. III-B/C, Eq. 8-14, Fig. 2b and 3) and their parts.

- ``MRCAB``: modified residual channel attention block (Eq. 9-11, Fig. 3a); ``RCAB``: the original block of RCAN.
- ``MSConv``: multi-scale convolution over channel groups (Eq. 12, Fig. 3b).
- ``MultiScaleCrossGate`` (MSCG, Eq. 8-14, Fig. 2b): the paper's SFEM, fusing the last segmentation and SR decoder
  features into two re-weighted features for the proxy task.
- ``MAF`` (SS-MAF) and ``FIM`` (SuperVessel): the authors' earlier SFEMs (refs. [24] and [23]), as released.

Every SFEM on features has ``forward(f_seg, f_sr) -> (f_seg', f_sr')`` and ``weights(f_seg, f_sr) -> (a_seg, a_sr)``;
``FIM`` works on the outputs instead: ``forward(seg_logits, sr_image) -> fused seg logits``. Inputs are always
concatenated as (segmentation, SR), the order of Eq. 8 (the released code puts SR first: only a permutation of
the first 1x1 convolution's input weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.aspp import ASPP
from dualseg.models.blocks.attention import SqueezeExcite
from dualseg.models.blocks.conv import ConvNormAct, DepthwiseConv2d
from dualseg.models.blocks.transformer import PatchEmbed, TransformerBlock, Unpatchify
from dualseg.models.options import check_choice, check_positive_int

MSCONV_BRANCHES = ("conv1x1", "dilated", "pool")
MSCONV_DISABLED = ("substitute", "identity")
GATES = ("mrcab", "mrcab_gpool", "rcab")
CONTEXTS = ("msconv", "aspp", "self_attention", "none")


class PixelGate(nn.Module):
    """Per-pixel channel gate: ``x * sigmoid(W2 LeakyReLU(W1 x))`` with 1x1 convolutions ``C -> C/r -> C`` (biases)
    applied at every position, i.e. SE without the global pooling (MRCAB, Eq. 10). ``weights`` is (N, C, H, W)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.LeakyReLU(0.01, inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(self.act(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class MRCAB(nn.Module):
    """Modified residual channel attention block (Eq. 9-11, Fig. 3a; code ``RCAB``).

    ``z = DW3x3(DW3x3(x))`` (two depthwise 3x3 convolutions with biases, no activation between, Eq. 9);
    ``out = x + A(z) * z`` (Eq. 10-11) where ``A`` = 1x1 ``C -> C/r`` -> LeakyReLU -> 1x1 ``-> C`` -> sigmoid.

    ``pool=False`` (default): ``A`` acts on every pixel (a per-pixel, per-channel gate): the paper's text ("instead
    of a global average ... two linear layers directly squeeze and expand the features"), Table IV "Ours (w/o
    gpool)" and the authors' code from Aug. 2023 on. ``pool=True``: ``A`` starts with a global average pool (SE
    channel attention, one weight per channel): Table IV "Ours (w/ gpool)" and the Nov. 2022 code.
    """

    def __init__(self, channels: int, reduction: int = 4, pool: bool = False) -> None:
        super().__init__()
        check_positive_int("MRCAB reduction", reduction)
        self.pool = bool(pool)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.attention: nn.Module = (
            SqueezeExcite(channels, reduction, act="leaky_relu") if self.pool else PixelGate(channels, reduction)
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention ``A(z)``: (N, C, 1, 1) with ``pool=True``, else (N, C, H, W)."""
        return self.attention.weights(self.conv2(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.conv2(self.conv1(x)))


class RCAB(nn.Module):
    """Residual channel attention block of RCAN (Zhang et al., ECCV 2018), the "RCAB" row of DS2F's Table IV:
    ``x + CA(Conv3x3(ReLU(Conv3x3(x))))`` with dense 3x3 convolutions and SE channel attention (global pooling,
    ``C -> C/r -> C``, ReLU)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        check_positive_int("RCAB reduction", reduction)
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.attention = SqueezeExcite(channels, reduction, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.body(x))


class ImagePool(nn.Module):
    """Image pooling (DeepLabV3): global average pool -> 1x1 conv (bias, no norm: a BN on the pooled 1x1 map fails
    at batch 1) -> bilinear back to the input size. Every position gets the same vector."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class MSConv(nn.Module):
    """Multi-scale convolution (Eq. 12, Fig. 3b; code ``MSConv2d``): ``GELU(BN(concat(W_1 S_1, ..., IP(S_k))))``.

    The channels are split into ``groups`` = k equal groups (``channels % k == 0``, else a ``DualsegError``):
    group 0 -> 1x1 convolution ("conv1x1"); groups 1..k-2 -> depthwise 3x3 convolution with dilation = padding =
    group index, i.e. 1, 2 for k = 4 ("dilated"; the paper's "group index minus 1" counts from 1); group k-1 ->
    image pooling ("pool"). Batch norm, then GELU.

    ``branches`` lists the components that are on (Table VI). A component that is off is replaced, per
    ``disabled``: ``"substitute"`` (default, Table VI's protocol) - a missing 1x1 or image-pooling branch becomes a
    depthwise 3x3 convolution ("we demonstrate their necessity by using depthwise convolution substitution";
    dilation = max(group index, 1), continuing the sequence) and missing "dilated" makes the middle groups dense
    (non-depthwise) dilated 3x3 convolutions (Table VI's "DW x" row); ``"identity"`` - the group passes through
    unchanged. ``kinds`` names what each group got.

    Deviation (numerical stability): the batch norm covers every group except the image-pooling one. Those channels
    are constant over space, so a batch norm over them normalises across the batch only: with batch 1 it erases
    them (zero variance; the released code, whose configs train with batch 1, does this), and when the samples of a
    batch agree it divides by a near-zero variance, which blew up the gradients to NaN in bf16 training on DRIVE.
    The pooled branch keeps its 1x1 convolution's bias instead. ``pool_norm=True`` puts the pooled group under the
    batch norm as the released code (Eq. 12 as written; for reproducing the code, e.g. the parity check).
    """

    def __init__(
        self,
        channels: int,
        groups: int = 4,
        branches: Sequence[str] = MSCONV_BRANCHES,
        disabled: str = "substitute",
        pool_norm: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 2:
            raise DualsegError(f"MSConv groups must be an integer >= 2 (1x1 group + pooling group), got {groups!r}")
        if channels % groups:
            low, high = channels // groups * groups, (channels // groups + 1) * groups
            valid = f"{low} or {high}" if low else str(high)
            raise DualsegError(
                f"MSConv: {channels} channels cannot be split into {groups} equal groups; use a multiple of "
                f"{groups} channels (e.g. {valid}) or another number of groups"
            )
        if isinstance(branches, str):
            branches = (branches,)
        branches = tuple(branches)
        for b in branches:
            check_choice("MSConv branch", b, MSCONV_BRANCHES)
        check_choice("MSConv disabled mode", disabled, MSCONV_DISABLED)
        self.groups = groups
        self.group_channels = g = channels // groups
        self.branches = branches
        convs: list[nn.Module] = []
        kinds: list[str] = []
        for i in range(groups):
            kind = "conv1x1" if i == 0 else "pool" if i == groups - 1 else "dilated"
            if kind in branches:
                if kind == "conv1x1":
                    convs.append(nn.Conv2d(g, g, 1))
                elif kind == "pool":
                    convs.append(ImagePool(g))
                else:
                    convs.append(DepthwiseConv2d(g, 3, dilation=i))
            elif disabled == "identity":
                kind = "identity"
                convs.append(nn.Identity())
            elif kind == "dilated":
                kind = "dense_dilated"
                convs.append(nn.Conv2d(g, g, 3, padding=i, dilation=i))
            else:
                kind = "dw_substitute"
                d = max(i, 1)
                convs.append(DepthwiseConv2d(g, 3, dilation=d))
            kinds.append(kind)
        self.convs = nn.ModuleList(convs)
        self.kinds = tuple(kinds)
        self.pooled = kinds[-1] == "pool" and not pool_norm  # left out of the batch norm (see the class docstring)
        self.norm = nn.BatchNorm2d(channels - g if self.pooled else channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [conv(part) for conv, part in zip(self.convs, torch.split(x, self.group_channels, dim=1))]
        if self.pooled:
            return self.act(torch.cat([self.norm(torch.cat(parts[:-1], dim=1)), parts[-1]], dim=1))
        return self.act(self.norm(torch.cat(parts, dim=1)))


class SelfAttentionContext(nn.Module):
    """Spatial self-attention context (Table V "Self-Att"): a strided ``patch x patch`` patch embedding, one pre-norm
    transformer block (``blocks.transformer``; multi-head self-attention + MLP) over the patch tokens, and a learned
    unpatchify back to the map (the code's commented-out ``GlobalSpatialAttention`` also attends on a downsampled
    map). No position embedding, so any size works; the map is replicate-padded to a multiple of ``patch``."""

    def __init__(self, channels: int, heads: int = 4, patch: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.patch = check_positive_int("self-attention patch", patch)
        self.embed = PatchEmbed(channels, channels, patch)
        self.block = TransformerBlock(channels, heads, mlp_ratio)
        self.unembed = Unpatchify(channels, channels, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.patch, (-w) % self.patch
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        tokens, grid = self.embed(x)
        return self.unembed(self.block(tokens), grid)[..., :h, :w]


def make_context(
    context: str,
    channels: int,
    msconv_groups: int = 4,
    msconv_branches: Sequence[str] = MSCONV_BRANCHES,
    msconv_disabled: str = "substitute",
    aspp_rates: Sequence[int] = (12, 24, 36),
    heads: int = 4,
    patch: int = 4,
    msconv_pool_norm: bool = False,
) -> nn.Module:
    """The multi-scale context module of the gate by name (Table V): ``"msconv"`` (``MSConv``, the paper),
    ``"aspp"`` (``blocks.ASPP`` ``channels -> channels``, no dropout; needs batch >= 2 in training, like every
    BN-ASPP), ``"self_attention"`` (``SelfAttentionContext``) or ``"none"`` (identity)."""
    check_choice("MSCG context", context, CONTEXTS)
    if context == "msconv":
        return MSConv(channels, msconv_groups, msconv_branches, msconv_disabled, msconv_pool_norm)
    if context == "aspp":
        return ASPP(channels, channels, rates=aspp_rates, dropout=0.0)
    if context == "self_attention":
        return SelfAttentionContext(channels, heads=heads, patch=patch)
    return nn.Identity()


def make_gate_attention(gate: str, channels: int, reduction: int = 4) -> nn.Module:
    """The attention block of the gate by name (Table IV): ``"mrcab"`` (``MRCAB``, per-pixel gate, the paper),
    ``"mrcab_gpool"`` (``MRCAB(pool=True)``) or ``"rcab"`` (RCAN's ``RCAB``)."""
    check_choice("MSCG gate", gate, GATES)
    if gate == "rcab":
        return RCAB(channels, reduction)
    return MRCAB(channels, reduction, pool=gate == "mrcab_gpool")


class CrossGate(nn.Module):
    """The gate of MSCG (code ``Gate``): ``Gate(x) = Context(Attention(x)) + x`` (Fig. 2b: MRCAB, then MS-Conv,
    with a long residual)."""

    def __init__(self, attention: nn.Module, context: nn.Module) -> None:
        super().__init__()
        self.attention = attention
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context(self.attention(x)) + x


class MultiScaleCrossGate(nn.Module):
    """Multi-Scale Cross Gate (MSCG, Eq. 8-14, Fig. 2b; code ``CrossGL``), the DS2F instance of an SFEM.

    ``F_fu = GELU(BN(Conv1x1(concat(F_seg, F_sr))))`` with ``hidden`` channels (Eq. 8), ``G = Gate(F_fu)``
    (``CrossGate``: MRCAB then MS-Conv, Eq. 9-12), then per task ``a_t = GELU(Conv1x1(G))`` (hidden -> task
    channels) and ``F_t' = Conv1x1(a_t * F_t) + F_t`` (the code's form of Eq. 13-14; the paper writes
    ``GELU(Conv1x1(a_t * F_t))`` without the residual). ``forward(f_seg, f_sr)`` returns ``(F_seg', F_sr')``;
    ``weights(f_seg, f_sr)`` returns ``(a_seg, a_sr)``.

    Ablation switches: ``gate`` (Table IV: ``"mrcab"``, ``"mrcab_gpool"``, ``"rcab"``), ``context`` (Table V:
    ``"msconv"``, ``"aspp"``, ``"self_attention"``, ``"none"``), ``msconv_branches`` / ``msconv_disabled``
    (Table VI, see ``MSConv``), ``msconv_groups`` (k), ``msconv_pool_norm`` (``MSConv``'s ``pool_norm``).
    ``aspp_rates``: the ASPP context's rates (the code's commented-out alternative used 1x1 + 12/24/36);
    ``attn_heads`` / ``attn_patch``: the self-attention context.
    """

    def __init__(
        self,
        seg_ch: int,
        sr_ch: int,
        hidden: int = 32,
        reduction: int = 4,
        gate: str = "mrcab",
        context: str = "msconv",
        msconv_groups: int = 4,
        msconv_branches: Sequence[str] = MSCONV_BRANCHES,
        msconv_disabled: str = "substitute",
        aspp_rates: Sequence[int] = (12, 24, 36),
        attn_heads: int = 4,
        attn_patch: int = 4,
        msconv_pool_norm: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("MSCG seg_ch", seg_ch)
        check_positive_int("MSCG sr_ch", sr_ch)
        check_positive_int("MSCG hidden", hidden)
        self.fuse = ConvNormAct(seg_ch + sr_ch, hidden, 1, norm="batch", act="gelu")
        self.gate = CrossGate(
            make_gate_attention(gate, hidden, reduction),
            make_context(
                context, hidden, msconv_groups, msconv_branches, msconv_disabled, aspp_rates, attn_heads, attn_patch,
                msconv_pool_norm,
            ),
        )
        self.to_seg = ConvNormAct(hidden, seg_ch, 1, norm=None, act="gelu")
        self.to_sr = ConvNormAct(hidden, sr_ch, 1, norm=None, act="gelu")
        self.out_seg = nn.Conv2d(seg_ch, seg_ch, 1)
        self.out_sr = nn.Conv2d(sr_ch, sr_ch, 1)

    def weights(self, f_seg: torch.Tensor, f_sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross weights ``(a_seg, a_sr)`` (GELU outputs, not bounded to [0, 1])."""
        if f_seg.shape[-2:] != f_sr.shape[-2:]:
            raise DualsegError(
                f"MSCG needs equally sized features, got {tuple(f_seg.shape[-2:])} and {tuple(f_sr.shape[-2:])}"
            )
        g = self.gate(self.fuse(torch.cat([f_seg, f_sr], dim=1)))
        return self.to_seg(g), self.to_sr(g)

    def forward(self, f_seg: torch.Tensor, f_sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_seg, a_sr = self.weights(f_seg, f_sr)
        return self.out_seg(a_seg * f_seg) + f_seg, self.out_sr(a_sr * f_sr) + f_sr


class SSC(nn.Module):
    """Split-scale convolution of SS-MAF (code ``SSC``): k channel groups -> group 0 a 1x1 convolution (bias),
    group i >= 1 a dense 3x3 convolution with dilation i (no bias); concat -> BN -> + input -> ReLU."""

    def __init__(self, channels: int, groups: int = 4) -> None:
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
            raise DualsegError(f"SSC: {channels} channels cannot be split into {groups!r} equal groups")
        self.group_channels = g = channels // groups
        convs: list[nn.Module] = [nn.Conv2d(g, g, 1)]
        convs += [nn.Conv2d(g, g, 3, padding=i, dilation=i, bias=False) for i in range(1, groups)]
        self.convs = nn.ModuleList(convs)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.group_channels, dim=1)
        y = torch.cat([conv(part) for conv, part in zip(self.convs, parts)], dim=1)
        return self.act(self.norm(y) + x)


class MAF(nn.Module):
    """Multi-task attention fusion of SS-MAF (Qiu et al., ref. [24] of DS2F; code ``MAF``), a feature-level SFEM.

    ``G = SSC(Conv1x1(concat(F_seg, F_sr)))`` with ``hidden`` channels; ``a_t = sigmoid(Conv1x1(G))`` per task;
    ``F_t' = a_t * F_t + F_t``. Same interface as ``MultiScaleCrossGate``.
    """

    def __init__(self, seg_ch: int, sr_ch: int, hidden: int = 32, groups: int = 4) -> None:
        super().__init__()
        check_positive_int("MAF hidden", hidden)
        self.fuse = nn.Sequential(nn.Conv2d(seg_ch + sr_ch, hidden, 1), SSC(hidden, groups))
        self.to_seg = nn.Conv2d(hidden, seg_ch, 1)
        self.to_sr = nn.Conv2d(hidden, sr_ch, 1)

    def weights(self, f_seg: torch.Tensor, f_sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sigmoid attention maps ``(a_seg, a_sr)``."""
        g = self.fuse(torch.cat([f_seg, f_sr], dim=1))
        return torch.sigmoid(self.to_seg(g)), torch.sigmoid(self.to_sr(g))

    def forward(self, f_seg: torch.Tensor, f_sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_seg, a_sr = self.weights(f_seg, f_sr)
        return a_seg * f_seg + f_seg, a_sr * f_sr + f_sr


class FIM(nn.Module):
    """Feature interaction module of SuperVessel (Hu et al., ref. [23] of DS2F; code ``FIM``), an output-level SFEM.

    It works where SuperVessel applies it: on the HR outputs, not on decoder features. ``u = ReLU(Conv1x1(
    concat(seg_logits, sr_image)))`` with ``3 * hidden`` channels; three groups of ``hidden`` channels pass
    depthwise 3x3 convolutions with dilations ``dilations`` (1, 2, 4); ``w = sigmoid(Conv1x1(ReLU(Conv1x1(.))))``,
    ``3 * hidden -> hidden -> 1``: one spatial weight map. ``forward(seg, sr)`` returns the fused logits
    ``w * seg + seg``; ``weights(seg, sr)`` returns ``w`` (N, 1, H, W). The code's channel shuffle after the
    depthwise branches is left out: it only permutes the input channels of the dense 1x1 convolution that follows.
    There is no fused SR output (SuperVessel has none).
    """

    def __init__(self, seg_ch: int, sr_ch: int, hidden: int = 8, dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        check_positive_int("FIM hidden", hidden)
        dilations = tuple(dilations)
        if not dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
            raise DualsegError(f"FIM dilations must be positive integers, got {dilations!r}")
        self.hidden = hidden
        width = hidden * len(dilations)
        self.fuse = ConvNormAct(seg_ch + sr_ch, width, 1, norm=None, act="relu")
        self.branches = nn.ModuleList(
            DepthwiseConv2d(hidden, 3, dilation=d) for d in dilations
        )
        self.att = nn.Sequential(ConvNormAct(width, hidden, 1, norm=None, act="relu"), nn.Conv2d(hidden, 1, 1))

    def weights(self, seg: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        if seg.shape[-2:] != sr.shape[-2:]:
            raise DualsegError(
                f"FIM needs equally sized inputs, got {tuple(seg.shape[-2:])} and {tuple(sr.shape[-2:])}"
            )
        u = self.fuse(torch.cat([seg, sr], dim=1))
        parts = torch.split(u, self.hidden, dim=1)
        u = torch.cat([branch(part) for branch, part in zip(self.branches, parts)], dim=1)
        return torch.sigmoid(self.att(u))

    def forward(self, seg: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        return seg * self.weights(seg, sr) + seg
