"""DANIE blocks (Dual Attention Network with Integrated Enhancement; paper 003, Sections 3.3-3.4).

``HierarchicalAttention`` is the HAP block (Eq. 2-5), ``ChannelSelfAttention`` the ES block (Eq. 6-7, DANet's channel
attention), ``GlobalContextGate`` the EH block (Eq. 8-9, a GCNet context block with a multiplicative sigmoid gate) and
``JointPreservation`` one fusion stage (Eq. 10-11) with the ablation fusions of Table 7.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dualseg.errors import DualsegError
from dualseg.models.blocks.attention import ChannelAttention, PooledSpatialAttention
from dualseg.models.blocks.conv import ConvNormAct, DoubleConv
from dualseg.models.options import check_choice

ATTENTION_ORDERS = ("channel_first", "spatial_first")
FUSIONS = ("jp", "add", "concat_res", "eh_add", "es_add")


def conv_block(in_ch: int, out_ch: int) -> DoubleConv:
    """The paper's ConvBlock: two 3x3 convolutions, each followed by batch norm and GELU (text after Eq. 11)."""
    return DoubleConv(in_ch, out_ch, norm="batch", act="gelu")


class HierarchicalAttention(nn.Module):
    """Hierarchical-attentional perception (HAP) block, Eq. 2-5.

    Two branches, max and avg, kept separate: channel attention ``A^c = sigmoid(MLP(P^s(h)))`` (Eq. 2; one MLP
    ``C -> C/r -> C`` shared by the branches as in CBAM) gives ``m = A^c * h``; spatial attention
    ``A^s = sigmoid(Conv1x1(P^c(m)))`` (Eq. 3; one 1x1 conv per branch on that branch's channel pooling) gives
    ``O = A^s * m``. Dynamic calibration ``O_d = w_max O_max + w_avg O_avg`` with learnable scalars (Eq. 4, both
    initialised to 0.5 — the paper gives no value); ``A_d = sigmoid(c*(O_d))`` weights ``h`` and a ConvBlock follows
    (Eq. 5). Choice: the paper says ``c*`` "compresses the channel dimensions" and calls ``A_d`` C x 1 x 1; we use a
    1x1 convolution C -> C and keep ``A_d`` at C x H x W, since pooling it to C x 1 x 1 would discard the spatial
    attention just computed.

    Ablation options (Tables 5-6): ``order="spatial_first"`` applies the spatial attention before the channel
    attention; ``dynamic_calibration=False`` fixes ``w_max = w_avg = 1`` (plain sum); ``channel=False`` /
    ``spatial=False`` drop one attention (at least one must stay).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        reduction: int = 16,
        order: str = "channel_first",
        channel: bool = True,
        spatial: bool = True,
        dynamic_calibration: bool = True,
    ) -> None:
        super().__init__()
        self.order = check_choice("attention order", order, ATTENTION_ORDERS, "DANIE")
        if not (channel or spatial):
            raise DualsegError("DANIE: the HAP block needs channel or spatial attention; to drop both use streams=sap")
        self.channel = ChannelAttention(in_ch, reduction) if channel else None
        self.spatial = None
        if spatial:  # one 1x1 conv per branch: [max, avg]
            self.spatial = nn.ModuleList([PooledSpatialAttention("max"), PooledSpatialAttention("avg")])
        self.dynamic_calibration = dynamic_calibration
        if dynamic_calibration:
            self.w_max = nn.Parameter(torch.tensor(0.5))
            self.w_avg = nn.Parameter(torch.tensor(0.5))
        self.calibrate = nn.Conv2d(in_ch, in_ch, 1)
        self.block = conv_block(in_ch, out_ch)

    def _channel(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        return x * self.channel.branch_weights(x)[branch] if self.channel is not None else x

    def _spatial(self, x: torch.Tensor, branch: int) -> torch.Tensor:
        return self.spatial[branch](x) if self.spatial is not None else x

    def branches(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(O_max, O_avg)`` of Eq. 3 (or of the configured order/ablation)."""
        if self.channel is not None and self.order == "channel_first":
            w_max, w_avg = self.channel.branch_weights(h)
            return self._spatial(h * w_max, 0), self._spatial(h * w_avg, 1)
        return self._channel(self._spatial(h, 0), 0), self._channel(self._spatial(h, 1), 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        o_max, o_avg = self.branches(h)
        o_d = self.w_max * o_max + self.w_avg * o_avg if self.dynamic_calibration else o_max + o_avg
        return self.block(torch.sigmoid(self.calibrate(o_d)) * h)


class ChannelSelfAttention(nn.Module):
    """ES: channel self-attention (Eq. 6-7; Fu et al., DANet, CVPR 2019).

    ``W = softmax(S S^T)`` over channels (the C x C energy of the flattened features, Eq. 6, without DANet's
    max-minus-energy trick, which the paper does not use), ``es = lambda * (W S) + S`` (Eq. 7) with the scalar
    ``lambda`` learned from 0, so the block starts as the identity. The energy is computed in float32.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        n, c, h, w = s.shape
        flat = s.reshape(n, c, h * w).float()
        attention = torch.softmax(torch.bmm(flat, flat.transpose(1, 2)), dim=-1)
        out = torch.bmm(attention, flat).reshape(n, c, h, w).to(s.dtype)
        return self.gamma * out + s


class GlobalContextGate(nn.Module):
    """EH: context modeling and context integration (Eq. 8-9; after GCNet, Cao et al., ICCVW 2019).

    Context modeling (Eq. 8): ``A_g = H softmax_HW(c1 * H)``, attention pooling by a 1x1 conv C -> 1 and a softmax
    over positions, giving a C x 1 x 1 context. Context integration (Eq. 9): ``W_g = sigmoid(c3 * GELU(LN(c2 * A_g)))``
    with ``c2: C -> C*ratio``, LayerNorm over (C*ratio, 1, 1) and ``c3`` back to C (GCNet's bottleneck, ratio 1/4);
    unlike GCNet's addition, ``eh = W_g * H`` (no residual), as Eq. 9 writes.
    """

    def __init__(self, channels: int, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = max(int(channels * ratio), 1)
        self.attend = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.GELU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """``A_g`` of Eq. 8, shape (N, C, 1, 1)."""
        n, c, h, w = x.shape
        weights = torch.softmax(self.attend(x).reshape(n, 1, h * w), dim=-1)
        return torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2)).reshape(n, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.transform(self.context(x))) * x


class JointPreservation(nn.Module):
    """One Joint Preservation stage: ``e = ES(s) + EH(h)`` (Eq. 10), ``j = ConvBlock(Cat[e, j_prev])`` (Eq. 11).

    ``j_prev`` is the previous (deeper) stage's output already brought to this stage's size and width, or ``None``
    at the deepest stage (then ``j = ConvBlock(e)``). ``fusion`` selects Table 7's rows: ``"jp"`` (C.5, ES + EH),
    ``"add"`` (C.2, ``s + h``), ``"es_add"`` (C.4, ``ES(s) + h``), ``"eh_add"`` (C.3, ``s + EH(h)``) and
    ``"concat_res"`` (C.1; the paper gives no detail, we use a 3x3 conv-BN-GELU over ``Cat[s, h]`` plus the
    residual ``s + h``). With one stream (Table 5's A.1/A.2, ``h`` or ``s`` is ``None``) ``e`` is the other stream's
    features and ``fusion`` must be ``"add"``.
    """

    def __init__(self, channels: int, fusion: str = "jp", has_previous: bool = True, eh_ratio: float = 0.25) -> None:
        super().__init__()
        self.fusion = check_choice("fusion", fusion, FUSIONS, "DANIE")
        self.es = ChannelSelfAttention() if fusion in ("jp", "es_add") else None
        self.eh = GlobalContextGate(channels, eh_ratio) if fusion in ("jp", "eh_add") else None
        self.mix = ConvNormAct(2 * channels, channels, 3, act="gelu") if fusion == "concat_res" else None
        self.block = conv_block(2 * channels if has_previous else channels, channels)

    def fuse(self, s: torch.Tensor | None, h: torch.Tensor | None) -> torch.Tensor:
        """``e`` of Eq. 10 (or of the configured fusion)."""
        if s is None or h is None:
            if self.fusion != "add" or (s is None and h is None):
                raise DualsegError("DANIE: a single-stream model needs fusion=add (Table 5's setting)")
            return s if h is None else h
        if self.mix is not None:
            return self.mix(torch.cat([s, h], dim=1)) + s + h
        es = self.es(s) if self.es is not None else s
        eh = self.eh(h) if self.eh is not None else h
        return es + eh

    def forward(self, s: torch.Tensor | None, h: torch.Tensor | None, previous: torch.Tensor | None) -> torch.Tensor:
        e = self.fuse(s, h)
        return self.block(e if previous is None else torch.cat([e, previous], dim=1))
