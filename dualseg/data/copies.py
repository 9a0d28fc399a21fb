"""Offline augmentation as virtual samples: seeded copies of every image, computed when read, never written.

DRFL (Sec. 4.4) "augmented all 30 images of the ISBI training set to obtain 300 images by simply applying the
flipping and random rotation". The paper gives no more detail; here copy 0 of an image is the image itself and
copy k >= 1 is flipped left-right and up-down (each with probability 0.5), then rotated about its centre by an
angle drawn uniformly from [0, 360) degrees, keeping the size, with mirror padding for the corners (bilinear for
the image and an SR target, nearest for the mask and FOV). The parameters depend only on (seed, stem, k), so
every run and every process sees the same images. Copy ``k`` of ``stem`` is named ``<stem>_copy<k>``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dualseg.data.dataset import SegmentationDataset
from dualseg.data.scan import Sample

_NEAREST = ("mask", "fov")  # label-like arrays: nearest-neighbour rotation


def copy_stem(stem: str, k: int) -> str:
    return f"{stem}_copy{k}"


@dataclass(frozen=True)
class OfflineCopy:
    """Copy ``index`` of ``source``: optional flips, then a rotation by ``angle`` degrees (0 for copy 0)."""

    source: Sample
    index: int
    hflip: bool = False
    vflip: bool = False
    angle: float = 0.0

    def apply(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The copy of each (H, W) or (H, W, C) array; sizes are kept."""
        out = {}
        for key, a in arrays.items():
            if self.hflip:
                a = a[:, ::-1]
            if self.vflip:
                a = a[::-1]
            if self.angle:
                nearest = key in _NEAREST
                a = ndimage.rotate(a.astype(np.float32) if nearest else a, self.angle, axes=(1, 0), reshape=False,
                                   order=0 if nearest else 1, mode="mirror")
                a = a.astype(arrays[key].dtype) if nearest else a
            out[key] = np.ascontiguousarray(a)
        return out


def make_copies(samples: Sequence[Sample], copies: int, seed: int) -> dict[str, OfflineCopy]:
    """``copies`` copies of every sample, keyed by the copy's stem (copy 0 is the sample itself)."""
    table = {}
    for s in samples:
        for k in range(copies):
            if k == 0:
                table[copy_stem(s.stem, k)] = OfflineCopy(s, 0)
                continue
            rng = random.Random(f"{seed}:{s.stem}:{k}")  # str seeds are hashed with SHA-512: the same everywhere
            table[copy_stem(s.stem, k)] = OfflineCopy(s, k, rng.random() < 0.5, rng.random() < 0.5,
                                                      rng.uniform(0.0, 360.0))
    return table


def copy_samples(table: Mapping[str, OfflineCopy]) -> dict[str, Sample]:
    """Virtual samples: the copy's stem with its source's files."""
    return {stem: Sample(stem, c.source.image, c.source.mask, c.source.fov, c.source.extra_channels)
            for stem, c in table.items()}


class CopiesDataset(SegmentationDataset):
    """A :class:`SegmentationDataset` over virtual samples: reads each copy's source and applies the copy."""

    def __init__(self, samples: Sequence[Sample], description, copies: Mapping[str, OfflineCopy], **kwargs) -> None:
        super().__init__(samples, description, **kwargs)
        self.copies = dict(copies)

    def read_arrays(self, s: Sample) -> dict[str, np.ndarray]:
        copy = self.copies[s.stem]
        return copy.apply(super().read_arrays(copy.source))
