"""The encoder -> decoder -> head flow shared by the baselines (as smp's ``base/model.py``): an encoder returns
feature maps, a decoder turns them into features (never logits), a head makes logits from them."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dualseg.models.base import SegmentationModel


class EncoderDecoderModel(SegmentationModel):
    """A segmentation model built from parts: ``self.encoder``, a decoder, ``self.head`` and, for deep supervision,
    ``self.aux_heads`` (an ``nn.ModuleList``, optional).

    ``decode(feats)`` returns a list of feature maps: item 0 feeds ``head`` (``"seg"``), item ``k`` feeds
    ``aux_heads[k - 1]`` (``"aux_k"``, training mode only). Logits coarser than the input are bilinearly upsampled
    to the input size. Subclasses set the parts (under the names their checkpoints hold) and ``size_divisor``.
    """

    encoder: nn.Module
    head: nn.Module

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(feats)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        size = x.shape[-2:]
        features = self.decode(self.encode(x))
        out = {"seg": to_size(self.head(features[0]), size)}
        if self.training:
            for k, head in enumerate(getattr(self, "aux_heads", ()), start=1):
                out[f"aux_{k}"] = to_size(head(features[k]), size)
        return out


def to_size(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``logits`` bilinearly resized to ``size`` (unchanged when already there)."""
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
