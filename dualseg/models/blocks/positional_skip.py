"""EFEN's improved skip connection (Applied Sciences 2023, 13(12), 6977, Sec. 3.2): sinusoidal positional encoding
(Box 1, Eq. 6-7) and a cross-attention skip whose weights come from the decoder (Eq. 5, 8, 9)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.errors import DualsegError
from dualseg.models.blocks.conv import ConvNormAct


def sinusoidal_positional_encoding(
    sequence_length: int, d_model: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Box 1: ``(sequence_length, d_model)`` matrix with ``sin(pos * w_i)`` in even and ``cos(pos * w_i)`` in odd
    columns, ``w_i = exp(-2i * ln(10000) / d_model)``. An odd ``d_model`` keeps the first ``d_model // 2`` cosines."""
    if sequence_length < 1 or d_model < 1:
        raise DualsegError(
            f"positional encoding needs sequence_length >= 1 and d_model >= 1, got {sequence_length}, {d_model}"
        )
    position = torch.arange(sequence_length, device=device, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / d_model)
    )
    encoding = torch.zeros(sequence_length, d_model, device=device, dtype=torch.float32)
    encoding[:, 0::2] = torch.sin(position * div_term)
    encoding[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return encoding.to(dtype)


def add_positional_encoding(x: torch.Tensor) -> torch.Tensor:
    """Eq. 6-7, ``F' = F + P(F)``: the ``(N, C, H, W)`` map read as a sequence of ``H*W`` row-major pixels with
    ``d_model = C`` channels, as Box 1 encodes a sequence."""
    _, c, h, w = x.shape
    pe = sinusoidal_positional_encoding(h * w, c, device=x.device, dtype=x.dtype)
    return x + pe.t().reshape(1, c, h, w)


class PositionalCrossAttentionSkip(nn.Module):
    """Improved skip connection ``R(F_E', F_D') = concat(F_E' * op2(A V), op3(F_D'))`` (Eq. 5-9).

    ``F_E`` is the encoder feature (``enc_ch`` channels, size ``H x W``), ``F_D`` the decoder feature that drives
    the attention: the coarser decoder map at ``H/2 x W/2`` (``dec_scale=2``, a decoder stage) or a map of the
    encoder's size (``dec_scale=1``, EFEN's fusion of the first decoder's output with the input image).

    * ``F_E' = F_E + P(F_E)``, ``F_D' = F_D + P(F_D)`` (Eq. 6-7, Box 1).
    * ``V = op1(F_E') W_V`` (Eq. 9); op1 = max-pool 2, 1x1 conv, BN, ReLU, so V lies at ``H/2 x W/2``.
    * ``A = softmax(Q K^T / d_k)`` (Eq. 8), ``Q = F_D' W_Q``, ``K = F_D' W_K`` (1x1 convs; with ``dec_scale=1``
      ``F_D'`` is max-pooled to V's grid first). ``d_k`` is V's channel count (``attn_dim``, default ``enc_ch``)
      and the scale is the paper's ``1/d_k``, not the usual ``1/sqrt(d_k)``.
    * op2 = 1x1 conv (``d_k -> enc_ch``), BN, ReLU, bilinear x2 up-sampling; op3 = up-sampling by ``dec_scale``,
      3x3 conv, 1x1 conv, BN, ReLU (``dec_ch -> out_ch``).

    Memory: the attention runs on the op1-pooled grid (``N = H*W/4`` tokens) through
    ``torch.nn.functional.scaled_dot_product_attention``, whose fused CPU/GPU kernels never hold the ``N x N``
    matrix (memory linear in ``N``; compute stays quadratic). ``attention_weights`` builds ``A`` explicitly, for
    inspection of small inputs only. Output channels: ``enc_ch + out_ch``.

    Numerics (the paper is silent): W_Q, W_K, W_V start Xavier-uniform with zero bias, as the projections of
    ``nn.MultiheadAttention`` (the Kaiming fan-out init of the other convolutions makes a 3-channel ``d_k``, the
    input-image skip, start with one-hot rows); the attention runs in float32 under autocast: Q and K come from
    un-normalised features (Eq. 8 has no norm), scores of ~2e9 were reached within 4 steps at lr 0.01, and PyTorch
    2.14's bf16 CPU flash-attention backward returned NaN on them where the float32 kernel did not.
    """

    def __init__(self, enc_ch: int, dec_ch: int, out_ch: int, attn_dim: int | None = None, dec_scale: int = 2) -> None:
        super().__init__()
        if dec_scale not in (1, 2):
            raise DualsegError(f"PositionalCrossAttentionSkip: dec_scale must be 1 or 2, got {dec_scale!r}")
        d = enc_ch if attn_dim is None else int(attn_dim)
        if d < 1:
            raise DualsegError(f"PositionalCrossAttentionSkip: attn_dim must be a positive integer, got {attn_dim!r}")
        self.attn_dim = d
        self.dec_scale = dec_scale
        self.op1 = nn.Sequential(nn.MaxPool2d(2), ConvNormAct(enc_ch, d, 1))
        self.w_v = nn.Conv2d(d, d, 1)
        self.w_q = nn.Conv2d(dec_ch, d, 1)
        self.w_k = nn.Conv2d(dec_ch, d, 1)
        self.op2 = nn.Sequential(
            ConvNormAct(d, enc_ch, 1), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        )
        self.op3 = nn.Sequential(
            nn.Upsample(scale_factor=dec_scale, mode="bilinear", align_corners=False)
            if dec_scale > 1
            else nn.Identity(),
            nn.Conv2d(dec_ch, out_ch, 3, padding=1),
            ConvNormAct(out_ch, out_ch, 1),
        )
        self.custom_init()

    def custom_init(self) -> None:
        """Xavier-uniform W_Q, W_K, W_V (re-applied by ``init_weights``)."""
        for projection in (self.w_q, self.w_k, self.w_v):
            nn.init.xavier_uniform_(projection.weight)
            nn.init.zeros_(projection.bias)

    def _query_key(self, f_d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q and K as ``(N, 1, tokens, d_k)`` from the positionally encoded decoder feature."""
        grid = f_d if self.dec_scale == 2 else F.max_pool2d(f_d, 2)
        return tokens(self.w_q(grid)), tokens(self.w_k(grid))

    def attention_weights(self, f_d: torch.Tensor) -> torch.Tensor:
        """``A = softmax(Q K^T / d_k)`` (Eq. 8) as an explicit ``(N, tokens, tokens)`` tensor (small inputs only)."""
        q, k = self._query_key(add_positional_encoding(f_d))
        return torch.softmax(q[:, 0] @ k[:, 0].transpose(1, 2) / self.attn_dim, dim=-1)

    def forward(self, f_e: torch.Tensor, f_d: torch.Tensor) -> torch.Tensor:
        h, w = f_e.shape[-2:]
        expected = (h // 2, w // 2) if self.dec_scale == 2 else (h, w)
        if h % 2 or w % 2 or tuple(f_d.shape[-2:]) != expected:
            raise DualsegError(
                f"PositionalCrossAttentionSkip: encoder feature {h}x{w} (must be even) needs a decoder feature of "
                f"{expected[0]}x{expected[1]} (dec_scale={self.dec_scale}), got {f_d.shape[-2]}x{f_d.shape[-1]}"
            )
        f_e = add_positional_encoding(f_e)
        f_d = add_positional_encoding(f_d)
        q, k = self._query_key(f_d)
        v_map = self.w_v(self.op1(f_e))
        v = tokens(v_map)
        av = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=1.0 / self.attn_dim)
        av = av[:, 0].transpose(1, 2).reshape(v_map.shape).to(v_map.dtype)
        return torch.cat([f_e * self.op2(av), self.op3(f_d)], dim=1)


def tokens(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, 1, H*W, C)``: one attention head over row-major pixels, contiguous (the fused
    CPU kernel of ``scaled_dot_product_attention`` needs unit stride in the last dimension, else it falls back to
    the quadratic-memory math path)."""
    return x.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
