"""The input preprocessing step (``data.preprocess``), applied to the [0, 1] image before normalisation, in the
dataset and at prediction alike (the step is stored in the model's InputSpec).

``none``: the image as read; ``green``: the green channel of an RGB image (fundus photographs: vessels have their
highest contrast there), so the model takes 1 channel; ``clahe``: contrast-limited adaptive histogram
equalisation (Zuiderveld, Graphics Gems IV, 1994) of a gray image, or of the value channel (max of R, G, B) of an
RGB image with hue and saturation kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualseg.data.io import to_channels, to_float
from dualseg.errors import DualsegError

PREPROCESSES = ("none", "green", "clahe")
GREEN = 1  # the channel index of green in RGB
CLAHE_TILES = 8  # tiles along each side (the contextual regions)
CLAHE_CLIP = 0.01  # histogram clip limit, as a fraction of a tile's pixels
CLAHE_BINS = 256


def check_preprocess(preprocess: str) -> None:
    if preprocess not in PREPROCESSES:
        raise DualsegError(f"unknown preprocessing '{preprocess}'; choose one of {', '.join(PREPROCESSES)}")


def input_channels(preprocess: str, channels: int) -> int:
    """The channels the model takes from images read with ``channels`` channels."""
    return 1 if preprocess == "green" else channels


def read_channels(preprocess: str, model_channels: int) -> int:
    """The channels an image is converted to before the step, for a model taking ``model_channels``."""
    return 3 if preprocess == "green" else model_channels


def clahe(image: np.ndarray, tiles: int = CLAHE_TILES, clip: float = CLAHE_CLIP, bins: int = CLAHE_BINS) -> np.ndarray:
    """CLAHE of an (H, W) image: its min..max range is cut into ``bins``, each of ``tiles`` x ``tiles`` regions
    maps gray levels through its clipped cumulative histogram, and each pixel blends the maps of the four nearest
    region centres bilinearly. Returns float32 in [0, 1]."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros(image.shape, np.float32)
    levels = np.clip(((image - low) / (high - low) * (bins - 1)).round(), 0, bins - 1).astype(np.int64)
    h, w = image.shape
    ty, tx = min(tiles, h), min(tiles, w)
    rows, cols = np.linspace(0, h, ty + 1).astype(int), np.linspace(0, w, tx + 1).astype(int)
    maps = np.empty((ty, tx, bins), np.float32)
    for i in range(ty):
        for j in range(tx):
            region = levels[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
            hist = np.bincount(region.ravel(), minlength=bins).astype(np.float64)
            limit = max(clip * region.size, 1.0)
            excess = np.maximum(hist - limit, 0).sum()
            hist = np.minimum(hist, limit) + excess / bins  # clipped counts spread evenly over all levels
            maps[i, j] = np.cumsum(hist) / region.size
    y0, y1, wy = _neighbours(rows, h)
    x0, x1, wx = _neighbours(cols, w)
    wy, wx = wy[:, None], wx[None, :]
    top = (1 - wx) * maps[y0[:, None], x0[None, :], levels] + wx * maps[y0[:, None], x1[None, :], levels]
    bottom = (1 - wx) * maps[y1[:, None], x0[None, :], levels] + wx * maps[y1[:, None], x1[None, :], levels]
    return np.clip((1 - wy) * top + wy * bottom, 0, 1).astype(np.float32)


def _neighbours(edges: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pixel along one side: the regions whose centres enclose it and the weight of the second."""
    centres = (edges[:-1] + edges[1:] - 1) / 2
    position = np.interp(np.arange(size), centres, np.arange(len(centres)))
    first = np.floor(position).astype(np.int64)
    second = np.minimum(first + 1, len(centres) - 1)
    return first, second, (position - first).astype(np.float32)


def preprocess_image(image: np.ndarray, preprocess: str) -> np.ndarray:
    """The step on an (H, W, C) float image in [0, 1] (C = :func:`read_channels`)."""
    if preprocess == "none":
        return image
    if preprocess == "green":
        return np.ascontiguousarray(image[..., GREEN:GREEN + 1])
    check_preprocess(preprocess)
    if image.shape[-1] == 1:
        return clahe(image[..., 0])[..., None]
    value = image.max(axis=-1)
    ratio = clahe(value) / np.maximum(value, 1e-6)  # RGB scaled with V: hue and saturation stay
    return np.clip(image * ratio[..., None], 0, 1).astype(np.float32)


def read_unit(stored: np.ndarray, channels: int, preprocess: str, path: str | Path = "") -> np.ndarray:
    """An image as read from its file -> (H, W, C) float32 in [0, 1] (by the dtype's range) with the channels the
    step takes, for a model taking ``channels``. Scaled before the channel conversion: an RGB -> gray mix is float,
    and would otherwise keep an 8-bit image's 0..255."""
    return to_channels(to_float(stored, path), read_channels(preprocess, channels), path)


def unit_image(stored: np.ndarray, channels: int, preprocess: str, path: str | Path = "") -> np.ndarray:
    """An image as read from its file -> the model input before normalisation: :func:`read_unit`, then the step.
    The one way the dataset, prediction and overlays make it (training colour augmentation goes in between)."""
    return preprocess_image(read_unit(stored, channels, preprocess, path), preprocess)
