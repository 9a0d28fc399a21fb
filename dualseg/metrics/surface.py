"""Surface-distance metrics: 95th-percentile Hausdorff distance (HD95) and average symmetric surface distance (ASD).

Both come from MONAI (``compute_hausdorff_distance(percentile=95)``, ``compute_average_surface_distance``), on 2D
images ``(H, W)`` or on volumes ``(D, H, W)`` stacked from slices, one-vs-rest per class. Distances are Euclidean,
in units of ``spacing`` (one value per axis), or in pixels when no spacing is known.

* HD95 = max of the two directed 95th percentiles of the distances from each surface to the other (MONAI's
  ``directed=False``; the same as medpy's ``hd95``).
* ASD = mean of the two directed average surface distances, ``(d(P->R) + d(R->P)) / 2`` (medpy's ``assd``, as
  used by TransUNet/CASCADE). MONAI's ``symmetric=True`` instead averages the pooled set of both directions' distances
  (weighted by the number of surface pixels); dualseg computes the two directed means with MONAI and averages them.

Empty masks. MONAI gives NaN when both masks of a class are empty, and NaN (HD95) or inf (ASD) when exactly one is,
with a warning. dualseg's rule (:data:`EMPTY_RULE`): both empty -> NaN (undefined; skipped by every mean); exactly
one empty (a missed or a hallucinated structure) -> the worst possible distance, the diagonal of the image or volume
in the same units, so a miss counts against the method instead of vanishing from the mean. Paper conventions that
override this (TransUNet's 0) are applied by :mod:`dualseg.metrics.conventions`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dualseg.errors import DualsegError

SURFACE_METRICS: tuple[str, ...] = ("hd95", "asd")
EMPTY_RULE = "both empty: NaN; one empty: the image diagonal (worst case)"


def diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Length of the grid's diagonal in spacing units: the largest distance two pixels can have (plus one pixel)."""
    sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, dtype=np.float64)
    return float(np.sqrt(np.sum((np.asarray(shape, dtype=np.float64) * sp) ** 2)))


def surface_metrics(
    pred: Tensor,
    target: Tensor,
    num_labels: int,
    spacing: Sequence[float] | None = None,
    valid: Tensor | None = None,
    classes: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """HD95 and ASD per class: label maps ``(H, W)`` or ``(D, H, W)`` -> ``{"hd95": (L,), "asd": (L,)}``.

    ``valid`` (same shape) sets pixels outside it to background in both maps (FOV). ``classes`` limits the work to
    these class indices (others stay NaN); default: all. The empty-mask rule is :data:`EMPTY_RULE`.
    """
    from monai.data import get_track_meta, set_track_meta
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"surface metrics take (H, W) or (D, H, W) label maps, got shape {tuple(pred.shape)}")
    if spacing is not None and len(spacing) != pred.ndim:
        raise DualsegError(f"spacing {list(spacing)} needs {pred.ndim} values, one per axis of {tuple(pred.shape)}")
    pred, target = pred.cpu().long(), target.cpu().long()
    if valid is not None:
        keep = valid.cpu().bool()
        pred, target = pred * keep, target * keep
    out = {name: np.full(num_labels, np.nan) for name in SURFACE_METRICS}
    worst = diagonal(pred.shape, spacing)
    both = []
    for c in range(num_labels) if classes is None else classes:
        in_pred, in_target = bool((pred == c).any()), bool((target == c).any())
        if in_pred and in_target:
            both.append(c)
        elif in_pred or in_target:
            out["hd95"][c] = out["asd"][c] = worst
    if not both:
        return out
    p = torch.stack([pred == c for c in both])[None].float()  # (1, K, *spatial) one-hot of the classes to measure
    t = torch.stack([target == c for c in both])[None].float()
    sp = None if spacing is None else [float(s) for s in spacing]
    tracking = get_track_meta()
    set_track_meta(False)  # MONAI's MetaTensor bookkeeping in its cropping costs more than the distances here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no empty masks reach MONAI; silence its other notices
            hd = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=sp)[0]
            to_target = compute_average_surface_distance(p, t, include_background=True, spacing=sp)[0]
            to_pred = compute_average_surface_distance(t, p, include_background=True, spacing=sp)[0]
    finally:
        set_track_meta(tracking)
    for k, c in enumerate(both):
        out["hd95"][c] = float(hd[k])
        out["asd"][c] = float(to_target[k] + to_pred[k]) / 2
    return out
