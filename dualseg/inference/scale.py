"""Scale proxies: a length in pixels measured the same way on the training images and on each new input, so that
prediction can bring an input to the scale the model learned at (factor = training length / measured length).

``fov_diameter``: the diameter of a fundus photograph's field of view (FOV); ``object_size``: the median
equivalent diameter of the foreground objects of a label mask; ``spacing``: the pixel spacing the files state (or
the user gives), as a resolution in pixels per millimetre (the pixels one mm spans: a length in pixels like the
others, so the same factor rule holds; :mod:`dualseg.data.spacing`); ``none``: no proxy (inputs keep their own
scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from dualseg.errors import DualsegError

PROXIES = ("none", "fov_diameter", "object_size", "spacing")
# the dark surround of a fundus photograph: below this fraction of the brightest channel's 99th percentile
FOV_THRESHOLD = 0.25
MIN_OBJECT_AREA = 9  # connected components smaller than a 3x3 square are specks, not objects
FACTOR_RANGE = (0.25, 4.0)  # factors outside it are refused: a proxy that far off is a wrong measurement


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask)
    if count <= 1:
        return mask
    areas = np.bincount(labelled.ravel())[1:]
    return labelled == 1 + int(areas.argmax())


def fov_from_image(image: np.ndarray, threshold: float = FOV_THRESHOLD) -> np.ndarray:
    """The field of view of a fundus photograph (H, W[, C]), any intensity range: pixels whose brightest channel
    exceeds ``threshold`` x that channel's 99th percentile, largest connected component, holes filled.

    A fraction of a high percentile, not a fixed level, follows the exposure (DRIVE's FOV interiors are at 0.3-0.5
    of the 99th percentile at their darkest rim, the surround below 0.06-0.26: 0.25 lies between); the largest
    component drops glare and text outside the FOV, the hole filling dark lesions inside it."""
    bright = image.max(axis=2) if image.ndim == 3 else image
    bright = bright.astype(np.float32)
    level = threshold * float(np.percentile(bright, 99))
    inside = bright > level
    if not inside.any():
        return inside
    return ndimage.binary_fill_holes(_largest_component(inside))


def fov_diameter(image: np.ndarray | None = None, fov: np.ndarray | None = None) -> float | None:
    """The FOV diameter in pixels: the larger of the FOV's extents across columns and across rows (the number of
    columns, and of rows, it touches). From ``fov`` (nonzero = inside) when given, else from ``image`` by
    :func:`fov_from_image`. None when no FOV is found.

    The extent, not the equivalent-circle diameter sqrt(4 A / pi): many fundus cameras cut the FOV circle at the
    top and bottom of the frame, which shrinks its area but leaves its width (the larger extent) the diameter."""
    if fov is None:
        if image is None:
            raise ValueError("fov_diameter needs an image or a FOV mask")
        fov = fov_from_image(image)
    inside = np.asarray(fov) > 0
    if not inside.any():
        return None
    return float(max(inside.any(axis=0).sum(), inside.any(axis=1).sum()))


def object_size(labels: np.ndarray, background: int = 0) -> float | None:
    """The median equivalent diameter sqrt(4 A / pi) of the connected foreground objects (8-connected pixels
    not of class ``background``) of a label mask; specks under :data:`MIN_OBJECT_AREA` pixels are left out.
    None when there is no object."""
    labelled, count = ndimage.label(np.asarray(labels) != background, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    areas = np.bincount(labelled.ravel())[1:]
    areas = areas[areas >= MIN_OBJECT_AREA]
    if areas.size == 0:
        return None
    return float(np.median(np.sqrt(4 * areas / math.pi)))


def check_proxy(name: str) -> str:
    if name not in PROXIES:
        raise DualsegError(f"unknown scale proxy {name!r}; choose one of {', '.join(PROXIES)}")
    return name


@dataclass(frozen=True)
class TrainScale:
    """The proxy's median over the training images, and its range (min, max)."""

    median: float
    spread: tuple[float, float]


def summarise(values: Sequence[float | None]) -> TrainScale | None:
    """The median and range of the measurable values, or None when none was measurable."""
    found = np.array([v for v in values if v is not None], dtype=np.float64)
    if found.size == 0:
        return None
    return TrainScale(float(np.median(found)), (float(found.min()), float(found.max())))


IN_RANGE = 0.03  # an input within the training images' proxy range, widened by 3 %, is not resampled


def scale_factor(train_scale: float, measured: float, train_range: tuple[float, float] | None = None) -> float:
    """The resampling factor that brings an input whose proxy measures ``measured`` px to ``train_scale`` px; 1
    when ``measured`` lies within ``train_range`` (the training images' min and max) widened by ``IN_RANGE``: such
    an input is at a scale the model saw, and resampling it would only blur it."""
    if measured <= 0 or train_scale <= 0:
        raise ValueError(f"scale lengths must be positive, got {train_scale} and {measured}")
    if train_range is not None and train_range[0] * (1 - IN_RANGE) <= measured <= train_range[1] * (1 + IN_RANGE):
        return 1.0
    return train_scale / measured


def check_factor(factor: float, what: str) -> float:
    """``factor`` if it is in :data:`FACTOR_RANGE`, else a one-line error naming the way out."""
    low, high = FACTOR_RANGE
    if not (math.isfinite(factor) and low <= factor <= high):
        raise DualsegError(
            f"{what}: scale factor {factor:.3g} is outside {low}..{high} (the proxy measurement is probably wrong); "
            "set it with --scale FACTOR, or predict at the input's own scale with --scale none"
        )
    return factor


def scaled_size(size: Sequence[int], factor: float) -> tuple[int, int]:
    """(H, W) scaled by ``factor``, rounded, at least 1."""
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def resample(x: Tensor, size: Sequence[int]) -> Tensor:
    """(N, C, H, W) bilinearly to ``size``, antialiased when shrinking (as a camera of lower resolution sees it)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def resample_array(image: np.ndarray, factor: float) -> np.ndarray:
    """A (C, H, W) float32 array resampled by ``factor`` (see :func:`resample`)."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return resample(x, scaled_size(image.shape[-2:], factor))[0].numpy()
