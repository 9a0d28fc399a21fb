"""Vision-transformer pieces shared by the dual-stream models: patch embedding, position-embedding resampling,
(weighted) multi-head attention, MLP, pre-norm transformer block and a learned unpatchify.

Token tensors are ``(N, L, D)`` with ``L = h * w`` tokens in row-major order of the ``(h, w)`` patch grid.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.conv import make_act


class PatchEmbed(nn.Module):
    """Linear patch embedding (Dosovitskiy et al., ICLR 2021; DRFL Eq. 10): a ``patch x patch`` convolution with
    stride ``patch``, ``in_ch -> dim``. ``forward`` returns the tokens ``(N, h*w, dim)`` and the grid ``(h, w)``."""

    def __init__(self, in_ch: int, dim: int, patch: int) -> None:
        super().__init__()
        if patch < 1:
            raise DualsegError(f"PatchEmbed patch size must be >= 1, got {patch}")
        self.patch = patch
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = x.shape[-2:]
        if h % self.patch or w % self.patch:
            raise DualsegError(f"PatchEmbed: feature map {h}x{w} is not divisible by the patch size {self.patch}")
        y = self.proj(x)
        grid = (y.shape[-2], y.shape[-1])
        return y.flatten(2).transpose(1, 2), grid


def resample_pos_embed(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubically resample a learned position embedding ``(1, h*w, D)`` from grid ``old_grid`` to ``new_grid``
    (as timm does for ViTs), so a model built for one input size runs at another. Same grid: returned as is."""
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if old_grid == new_grid:
        return pos
    n, length, dim = pos.shape
    if length != old_grid[0] * old_grid[1]:
        raise DualsegError(f"position embedding has {length} tokens, not {old_grid[0]}x{old_grid[1]}")
    grid = pos.reshape(n, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False).to(pos.dtype)
    return grid.permute(0, 2, 3, 1).reshape(n, new_grid[0] * new_grid[1], dim)


class WeightedMultiHeadAttention(nn.Module):
    """Weighted multi-head attention (DRFL, Sec. 3.2 "WMAL", used in Eq. 11).

    ``q = sigmoid(g_q) W_q x``, ``k = sigmoid(g_k) W_k c``, ``v = sigmoid(g_v) W_v c`` with scalar gates ``g``
    initialised to 0.1, then scaled dot-product attention with a softmax over keys and an output projection.
    ``c = context`` gives cross-attention (query from ``x``, key/value from ``context``); ``context=None`` is
    self-attention. ``learnable_weights=True`` trains the gates (paper); ``False`` freezes them
    (``requires_grad=False``: constant factors sigmoid(0.1) ~ 0.525, as in the authors' released code).
    ``forward(..., return_attention=True)`` also returns the attention weights ``(N, heads, L_q, L_k)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        learnable_weights: bool = True,
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise DualsegError(f"attention dim {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.g_q = nn.Parameter(torch.tensor(0.1), requires_grad=learnable_weights)
        self.g_k = nn.Parameter(torch.tensor(0.1), requires_grad=learnable_weights)
        self.g_v = nn.Parameter(torch.tensor(0.1), requires_grad=learnable_weights)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, _ = t.shape
        return t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        c = x if context is None else context
        q = self._split(self.q(x) * torch.sigmoid(self.g_q))
        k = self._split(self.k(c) * torch.sigmoid(self.g_k))
        v = self._split(self.v(c) * torch.sigmoid(self.g_v))
        p = self.attn_drop if self.training else 0.0
        if return_attention:
            attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
            y = F.dropout(attn, p) @ v
        else:
            attn = None
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        y = y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        y = self.proj_drop(self.proj(y))
        return (y, attn) if return_attention else y


class Mlp(nn.Module):
    """Transformer feed-forward block (Eq. 12): ``Linear(dim -> hidden) -> act -> drop -> Linear -> drop``."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block with weighted attention (DRFL Eq. 11-12):
    ``Z' = WMHA(LN(Z)[, LN_c(context)]) + Z``, ``Z = MLP(LN(Z')) + Z'``.

    ``cross=True`` makes it a cross-attention block: ``forward(x, context)`` takes queries from ``x`` and keys and
    values from ``context`` (normalised by its own LayerNorm); only the ``x`` stream is updated.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        learnable_weights: bool = True,
        cross: bool = False,
        attn_drop: float = 0.0,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self.cross = cross
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_context = nn.LayerNorm(dim, eps=1e-6) if cross else None
        self.attn = WeightedMultiHeadAttention(
            dim, heads, attn_drop=attn_drop, proj_drop=drop, learnable_weights=learnable_weights
        )
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)), act=act, drop=drop)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_context is not None:
            if context is None:
                raise DualsegError("a cross-attention TransformerBlock needs a context")
            context = self.norm_context(context)
        elif context is not None:
            raise DualsegError("a self-attention TransformerBlock takes no context (build it with cross=True)")
        x = x + self.attn(self.norm1(x), context)
        return x + self.mlp(self.norm2(x))


class Unpatchify(nn.Module):
    """Learned token-to-map conversion: the ``(N, h*w, dim)`` tokens are laid out as a ``(N, dim, h, w)`` grid and
    a ``ConvTranspose2d(dim, out_ch, patch, stride=patch)`` maps each token back to a ``patch x patch`` tile
    (the "Reshape" of DRFL Eq. 13). ``forward(tokens, grid)`` returns ``(N, out_ch, h*patch, w*patch)``."""

    def __init__(self, dim: int, out_ch: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.ConvTranspose2d(dim, out_ch, patch, stride=patch)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        n, length, dim = tokens.shape
        if length != grid[0] * grid[1]:
            raise DualsegError(f"Unpatchify: {length} tokens do not fill a {grid[0]}x{grid[1]} grid")
        return self.proj(tokens.transpose(1, 2).reshape(n, dim, grid[0], grid[1]))
