"""Reduce per-image confusion counts to a JSON-ready evaluation summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dualseg.errors import DualsegError
from dualseg.metrics.confusion import COUNT_NAMES, METRIC_NAMES, metrics_from_counts
from dualseg.metrics.conventions import (
    DEFAULT_CONVENTION,
    Convention,
    apply_empty_rule,
    get_convention,
    natural_key,
    smoothed_overlap,
)

CONVENTION = "per-image mean, NaN-skip"
STD_DDOF = 1  # sample standard deviation, as usually reported as "mean ± std" in papers


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean along ``axis`` skipping NaNs; NaN where every value is NaN (no RuntimeWarning)."""
    finite = ~np.isnan(a)
    n = finite.sum(axis=axis)
    s = np.where(finite, a, 0.0).sum(axis=axis)
    out = np.full(n.shape, np.nan)
    np.divide(s, n, out=out, where=n > 0)
    return out


def _stats(v: np.ndarray) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of a 1-D array over its non-NaN entries (std: ``ddof=STD_DDOF``)."""
    v = v[~np.isnan(v)]
    n = int(v.size)
    mean = float(v.mean()) if n > 0 else None
    std = float(v.std(ddof=STD_DDOF)) if n > STD_DDOF else None
    return {"mean": mean, "std": std, "n": n}


def _json_float(x: Any) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def _as_counts(c: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(c, Tensor):
        c = c.detach().to(device="cpu", dtype=torch.int64).numpy()
    return np.asarray(c, dtype=np.int64)


def summarize(
    per_image_counts: Sequence[Tensor | np.ndarray],
    image_names: Sequence[str],
    class_names: Sequence[str],
    foreground: Sequence[int] | None = None,
    metric_names: Sequence[str] = METRIC_NAMES,
    extra_per_image: Mapping[str, np.ndarray] | None = None,
    *,
    convention: str = DEFAULT_CONVENTION,
    volume_ids: Sequence[str] | None = None,
    extra_per_volume: Mapping[str, np.ndarray] | None = None,
    extra_dataset_level: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Summarize per-image ``(L, 4)`` counts (see ``confusion_counts``) into a ``json.dumps``-able dict.

    Convention "per-image mean, NaN-skip": each metric is computed per image and class; a 0/0 value (e.g. Dice
    of a class absent from both prediction and reference) is NaN and skipped by every mean and std. Standard
    deviations are sample std over images (``ddof=1``); with fewer than 2 non-NaN values the std is ``None``.

    Keys: ``convention``, ``std_ddof``, ``n_images``, ``classes``, ``foreground_classes`` (names),
    ``per_class`` {class: {metric: {mean, std, n}}} over images; ``mean`` {metric: mean over foreground classes
    of the per-class means}; ``std`` {metric: std over images of each image's foreground mean};
    ``dataset_level`` {per_class, mean, counts}: metrics of the counts pooled over all images; ``per_image``
    [{name, per_class, mean, counts}]. NaN becomes ``None``.

    ``extra_per_image`` adds metrics that are not count-based (e.g. HD95): ``{name: array (n_images, L)}``; they
    are reduced like the others but have no dataset-level value unless ``extra_dataset_level`` ``{name: (L,)}``
    gives one (PR-AUC over all pixels).

    ``convention`` (see :mod:`dualseg.metrics.conventions`) chooses what ``per_class``/``mean``/``std`` hold:
    ``per_image`` (above), ``drfl`` (per image, Dice/IoU +1 smoothed), ``dataset`` (the pooled values; ``std`` is
    ``None`` and ``n`` counts images; metrics without a pooled value stay per-image means), ``per_volume`` and
    ``transunet`` (per volume: counts summed over the slices of each volume named by ``volume_ids``; metrics per
    volume from ``extra_per_volume`` ``{name: (n_volumes, L)}`` in sorted volume order, then the mean over volumes
    per class and over foreground classes; ``per_volume`` lists each volume). ``per_image`` rows keep the per-slice
    values. Added keys: ``convention_name``, ``mean_all`` (mean over ALL classes, background included, e.g. EFEN's
    mIoU), ``n_volumes`` and ``per_volume`` for volume conventions.
    """
    n_images = len(per_image_counts)
    if n_images == 0:
        raise DualsegError("no images to summarize")
    if len(image_names) != n_images:
        raise DualsegError(f"{len(image_names)} image names for {n_images} images")
    counts = np.stack([_as_counts(c) for c in per_image_counts])
    num_labels = len(class_names)
    if counts.shape[1:] != (num_labels, 4):
        raise DualsegError(
            f"counts have shape {counts.shape[1:]} per image but {num_labels} class names were given "
            f"({', '.join(class_names)}); expected ({num_labels}, 4)"
        )
    if len(set(class_names)) != num_labels:
        raise DualsegError(f"class names must be unique, got {list(class_names)}")
    fg = list(range(1, num_labels)) if foreground is None else [int(i) for i in foreground]
    if not fg or any(i < 0 or i >= num_labels for i in fg):
        raise DualsegError(f"foreground classes {fg} must be a non-empty subset of 0..{num_labels - 1}")

    conv = get_convention(convention)
    values = metrics_from_counts(counts, metric_names)  # {metric: (n_images, L)}
    if conv.smooth:
        values.update({k: v for k, v in smoothed_overlap(counts, conv.smooth).items() if k in values})
    values.update(_checked_extras(extra_per_image, n_images, num_labels, "extra_per_image"))
    names = list(values)

    per_class = {cls: {m: _stats(values[m][:, c]) for m in names} for c, cls in enumerate(class_names)}
    class_means = {m: _nanmean(values[m], axis=0) for m in names}  # (L,), same as per_class[...]["mean"]
    image_fg_mean = {m: _nanmean(values[m][:, fg], axis=1) for m in names}  # (n_images,)

    pooled_counts = counts.sum(axis=0)
    pooled = metrics_from_counts(pooled_counts, metric_names)
    for name, arr in (extra_dataset_level or {}).items():
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != (num_labels,):
            raise DualsegError(f"dataset-level metric '{name}' has shape {arr.shape}, expected {(num_labels,)}")
        pooled[name] = arr

    def class_counts(c: np.ndarray) -> dict[str, dict[str, int]]:
        return {cls: {k: int(v) for k, v in zip(COUNT_NAMES, c[i])} for i, cls in enumerate(class_names)}

    summary = {
        "convention": conv.description,
        "std_ddof": STD_DDOF,
        "n_images": n_images,
        "classes": list(class_names),
        "foreground_classes": [class_names[i] for i in fg],
        "per_class": per_class,
        "mean": {m: _json_float(_nanmean(class_means[m][fg], axis=0)) for m in names},
        "std": {m: _stats(image_fg_mean[m])["std"] for m in names},
        "dataset_level": {
            "per_class": {cls: {m: _json_float(pooled[m][c]) for m in pooled} for c, cls in enumerate(class_names)},
            "mean": {m: _json_float(_nanmean(pooled[m][fg], axis=0)) for m in pooled},
            "counts": class_counts(pooled_counts),
        },
        "per_image": [
            {
                "name": str(image_names[i]),
                "per_class": {
                    cls: {m: _json_float(values[m][i, c]) for m in names} for c, cls in enumerate(class_names)
                },
                "mean": {m: _json_float(image_fg_mean[m][i]) for m in names},
                "counts": class_counts(counts[i]),
            }
            for i in range(n_images)
        ],
    }
    summary["convention_name"] = conv.name
    if conv.unit == "dataset":
        for c, cls in enumerate(class_names):
            for m in pooled:
                summary["per_class"][cls][m] = {"mean": _json_float(pooled[m][c]), "std": None, "n": n_images}
        summary["mean"].update(summary["dataset_level"]["mean"])
        summary["std"].update({m: None for m in pooled})
    elif conv.unit == "volume":
        summary.update(_volume_summary(counts, class_names, fg, metric_names, conv, volume_ids, extra_per_volume,
                                       names))
    summary["mean_all"] = {
        m: _json_float(_nanmean(np.array([np.nan if v[m]["mean"] is None else v[m]["mean"]
                                          for v in summary["per_class"].values()]), axis=0))
        for m in summary["mean"]
    }
    return summary


def _checked_extras(extras: Mapping[str, np.ndarray] | None, n: int, num_labels: int, what: str) -> dict:
    out = {}
    for name, arr in (extras or {}).items():
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape != (n, num_labels):
            raise DualsegError(f"{what} metric '{name}' has shape {arr.shape}, expected {(n, num_labels)}")
        out[name] = arr
    return out


def _volume_summary(
    counts: np.ndarray,
    class_names: Sequence[str],
    fg: list[int],
    metric_names: Sequence[str],
    conv: Convention,
    volume_ids: Sequence[str] | None,
    extra_per_volume: Mapping[str, np.ndarray] | None,
    image_metrics: Sequence[str],
) -> dict[str, Any]:
    """``per_class``/``mean``/``std`` over volumes, plus ``n_volumes`` and the ``per_volume`` rows."""
    if volume_ids is None or len(volume_ids) != counts.shape[0]:
        raise DualsegError(f"convention '{conv.name}' needs one volume id per image (eval.volume_pattern)")
    volumes = sorted(set(volume_ids), key=natural_key)
    index = {v: i for i, v in enumerate(volumes)}
    vol_counts = np.zeros((len(volumes), *counts.shape[1:]), dtype=np.int64)
    np.add.at(vol_counts, [index[v] for v in volume_ids], counts)
    values = metrics_from_counts(vol_counts, metric_names)
    values.update(_checked_extras(extra_per_volume, len(volumes), len(class_names), "extra_per_volume"))
    values = apply_empty_rule(values, vol_counts, conv.empty_rule)
    names = [m for m in image_metrics if m in values] + [m for m in values if m not in image_metrics]
    fg_mean = {m: _nanmean(values[m][:, fg], axis=1) for m in names}
    class_means = {m: _nanmean(values[m], axis=0) for m in names}

    def class_counts(c: np.ndarray) -> dict[str, dict[str, int]]:
        return {cls: {k: int(v) for k, v in zip(COUNT_NAMES, c[i])} for i, cls in enumerate(class_names)}

    return {
        "n_volumes": len(volumes),
        "per_class": {cls: {m: _stats(values[m][:, c]) for m in names} for c, cls in enumerate(class_names)},
        "mean": {m: _json_float(_nanmean(class_means[m][fg], axis=0)) for m in names},
        "std": {m: _stats(fg_mean[m])["std"] for m in names},
        "per_volume": [
            {
                "name": v,
                "n_slices": int(sum(1 for x in volume_ids if x == v)),
                "per_class": {
                    cls: {m: _json_float(values[m][i, c]) for m in names} for c, cls in enumerate(class_names)
                },
                "mean": {m: _json_float(fg_mean[m][i]) for m in names},
                "counts": class_counts(vol_counts[i]),
            }
            for i, v in enumerate(volumes)
        ],
    }
