"""The metric conventions of the papers, selectable by name (``eval.convention``; ``dualseg evaluate --convention``).

A convention fixes three things: the unit that is scored (an image, the whole dataset pooled, or a volume stacked
from its slices), the Dice/IoU smoothing, and the rule for empty masks. See docs/metrics.md for the table.

========== ======== ========================================================= ==========================================
name       unit     empty masks                                               used by
========== ======== ========================================================= ==========================================
per_image  image    0/0 -> NaN, skipped (nnU-Net)                             dualseg default
drfl       image    Dice = (2TP+1)/(2TP+FP+FN+1), IoU = (TP+1)/(TP+FP+FN+1)   DRFL (util/Dice_test.py)
dataset    dataset  one pooled confusion matrix; 0/0 -> NaN                   DS2F (comm/metrics/metric.py)
per_volume volume   0/0 -> NaN, skipped                                       clean per-volume protocol
transunet  volume   pred & ref non-empty: computed; pred non-empty, ref       TransUNet, CASCADE, DANIE
                    empty: Dice=IoU=1, HD95=ASD=0; pred empty: all 0          (``calculate_metric_percase``)
========== ======== ========================================================= ==========================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dualseg.errors import DualsegError, did_you_mean


@dataclass(frozen=True)
class Convention:
    name: str
    unit: Literal["image", "dataset", "volume"]
    description: str  # recorded in summary.json as "convention"
    smooth: float = 0.0  # added to numerator and denominator of Dice and IoU of each unit
    empty_rule: Literal["nan", "transunet"] = "nan"


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention("per_image", "image", "per-image mean, NaN-skip"),
        Convention("drfl", "image", "per-image mean, Dice and IoU with +1 smoothing (DRFL)", smooth=1.0),
        Convention("dataset", "dataset", "dataset-level: one confusion matrix pooled over all images (DS2F)"),
        Convention("per_volume", "volume", "per-volume then per-class mean, NaN-skip"),
        Convention("transunet", "volume", "per-volume then per-class mean, TransUNet empty-mask rule",
                   empty_rule="transunet"),
    )
}
DEFAULT_CONVENTION = "per_image"
# Metrics a convention's smoothing and empty-mask rule rewrite (TransUNet reports Dice, HD95, Jaccard, ASSD).
OVERLAP_METRICS = ("dice", "iou")
TRANSUNET_METRICS = ("dice", "iou", "hd95", "asd")


def get_convention(name: str) -> Convention:
    if name not in CONVENTIONS:
        raise DualsegError(
            f"unknown metric convention '{name}'{did_you_mean(name, CONVENTIONS)}; choose one of "
            f"{', '.join(CONVENTIONS)}"
        )
    return CONVENTIONS[name]


def smoothed_overlap(counts: np.ndarray, smooth: float) -> dict[str, np.ndarray]:
    """Dice and IoU with ``smooth`` added to numerator and denominator (DRFL: 1; both-empty gives 1)."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    return {"dice": (2 * tp + smooth) / (2 * tp + fp + fn + smooth), "iou": (tp + smooth) / (tp + fp + fn + smooth)}


def apply_empty_rule(values: Mapping[str, np.ndarray], counts: np.ndarray, rule: str) -> dict[str, np.ndarray]:
    """Rewrite Dice, IoU, HD95 and ASD of empty cases by ``rule`` ('nan': unchanged; 'transunet': see the table).

    ``counts`` (..., L, 4) are the unit's counts; ``values`` hold arrays of shape (..., L).
    """
    out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in values.items()}
    if rule == "nan":
        return out
    if rule != "transunet":
        raise DualsegError(f"unknown empty-mask rule '{rule}'; choose nan or transunet")
    pred_any = counts[..., 0] + counts[..., 1] > 0
    ref_any = counts[..., 0] + counts[..., 2] > 0
    false_alarm = pred_any & ~ref_any
    for name in TRANSUNET_METRICS:
        if name not in out:
            continue
        hit = 1.0 if name in OVERLAP_METRICS else 0.0  # TransUNet: a prediction on an empty reference scores 1 / 0
        out[name] = np.where(false_alarm, hit, out[name])
        out[name] = np.where(~pred_any, 0.0, out[name])
    return out


def volume_of(stem: str, pattern: str) -> str:
    """The volume a slice belongs to: group 1 of ``pattern`` (or the whole match) searched in the stem."""
    match = re.search(pattern, stem)
    if match is None:
        raise DualsegError(
            f"slice '{stem}' does not match the volume pattern '{pattern}'; set eval.volume_pattern to a regex "
            "whose first group names the volume (e.g. '^(patient\\d+_frame\\d+)_slice_\\d+$')"
        )
    return match.group(1) if match.groups() else match.group(0)


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically (``slice_2`` before ``slice_10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def group_volumes(stems: Sequence[str], pattern: str) -> dict[str, list[int]]:
    """``{volume: [indices of its slices in natural stem order]}``, volumes sorted naturally."""
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(volume_of(stem, pattern), []).append(i)
    return {v: sorted(groups[v], key=lambda i: natural_key(stems[i])) for v in sorted(groups, key=natural_key)}
