"""Per-class confusion counts and the metrics derived from them.

Everything count-based is computed in two steps: label maps -> integer counts ``[TP, FP, FN, TN]`` per class
(one-vs-rest), then counts -> metric values. Counts add up, so the same ``metrics_from_counts`` gives per-image
numbers (counts of one image), pooled dataset-level numbers (counts summed over images) or per-volume numbers
(counts summed over the slices of a volume).

Convention (as nnU-Net): a ratio whose numerator and denominator are both 0 is NaN, never 0 or 1. For example,
the Dice of a class that is absent from both the prediction and the reference is NaN; the reductions in
:mod:`dualseg.metrics.summary` skip NaNs. A class absent from the reference but predicted gets Dice 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from dualseg.errors import DualsegError, did_you_mean

# Column order of the last axis of every counts array.
TP, FP, FN, TN = 0, 1, 2, 3
COUNT_NAMES: tuple[str, ...] = ("tp", "fp", "fn", "tn")


def num_labels_for(num_channels: int) -> int:
    """Number of label values for a model with ``num_channels`` output channels (1 sigmoid logit -> 2 labels)."""
    return max(2, int(num_channels))


def logits_to_labels(logits: Tensor) -> Tensor:
    """``(N, C, H, W)`` logits -> ``(N, H, W)`` long label map: ``logit > 0`` for ``C == 1``, argmax otherwise."""
    if logits.ndim < 3:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def logits_to_probs(logits: Tensor) -> Tensor:
    """``(N, C, H, W)`` logits -> ``(N, L, H, W)`` class probabilities, ``L = max(2, C)``.

    For ``C == 1`` the two channels are ``[1 - sigmoid, sigmoid]`` so that ``probs[:, c]`` is always the
    probability of label ``c``; otherwise softmax over channels.
    """
    if logits.ndim < 3:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    logits = logits.float()
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def _check_range(labels: Tensor, num_labels: int, what: str) -> None:
    if labels.numel() == 0:
        return
    lo, hi = torch.aminmax(labels)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= num_labels:
        raise DualsegError(f"{what} holds label values in [{lo}, {hi}], expected 0..{num_labels - 1}")


def batch_confusion_counts(pred: Tensor, target: Tensor, num_labels: int, valid: Tensor | None = None) -> Tensor:
    """Counts for a batch: ``(N, ...)`` label maps -> int64 ``(N, num_labels, 4)`` ``[TP, FP, FN, TN]`` per image.

    One ``bincount`` over ``image * L * L + target * L + pred``; runs on the device of the inputs.
    ``valid`` (same shape, bool or 0/1) selects the pixels that count.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if valid is not None and valid.shape != target.shape:
        raise ValueError(f"valid mask shape {tuple(valid.shape)} differs from target shape {tuple(target.shape)}")
    if pred.ndim < 1:
        raise ValueError("pred must have a batch dimension")
    n, nl = pred.shape[0], int(num_labels)
    pred = pred.reshape(n, -1).long()
    target = target.reshape(n, -1).long()
    _check_range(pred, nl, "prediction")
    _check_range(target, nl, "target")
    image = torch.arange(n, device=pred.device).unsqueeze(1)
    idx = (image * nl + target) * nl + pred
    if valid is not None:
        idx = idx[valid.reshape(n, -1).to(device=idx.device) != 0]
    cm = torch.bincount(idx.reshape(-1), minlength=n * nl * nl).reshape(n, nl, nl)  # rows: target, cols: pred
    tp = torch.diagonal(cm, dim1=1, dim2=2)
    fp = cm.sum(dim=1) - tp
    fn = cm.sum(dim=2) - tp
    tn = cm.sum(dim=(1, 2)).unsqueeze(1) - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], dim=-1).long()


def confusion_counts(pred: Tensor, target: Tensor, num_labels: int, valid: Tensor | None = None) -> Tensor:
    """Counts for ONE image: ``(H, W)`` label maps -> int64 ``(num_labels, 4)`` one-vs-rest ``[TP, FP, FN, TN]``.

    Only pixels where ``valid`` is nonzero are counted. ``num_labels`` is ``max(2, C)`` (see ``num_labels_for``).
    """
    return batch_confusion_counts(
        pred.unsqueeze(0), target.unsqueeze(0), num_labels, None if valid is None else valid.unsqueeze(0)
    )[0]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0``."""
    out = np.full(np.broadcast(num, den).shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]

def _mcc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """Matthews correlation coefficient; NaN when a marginal is empty (0/0), as scikit-learn's 0 is a convention."""
    return _ratio(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))


# name -> f(tp, fp, fn, tn) on float64 arrays. Add count-based metrics here.
METRIC_FUNCTIONS: dict[str, MetricFn] = {
    "dice": lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn),
    "iou": lambda tp, fp, fn, tn: _ratio(tp, tp + fp + fn),
    "accuracy": lambda tp, fp, fn, tn: _ratio(tp + tn, tp + fp + fn + tn),
    "sensitivity": lambda tp, fp, fn, tn: _ratio(tp, tp + fn),
    "specificity": lambda tp, fp, fn, tn: _ratio(tn, tn + fp),
    "precision": lambda tp, fp, fn, tn: _ratio(tp, tp + fp),
    "mcc": _mcc,
    "bm": lambda tp, fp, fn, tn: _ratio(tp, tp + fn) + _ratio(tn, tn + fp) - 1,  # informedness (Youden's J)
}

# The metrics reported by default, in report order.
METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "accuracy", "sensitivity", "specificity", "precision", "mcc", "bm")


def metrics_from_counts(counts: Tensor | np.ndarray, names: Sequence[str] = METRIC_NAMES) -> dict[str, np.ndarray]:
    """Counts of shape ``(..., L, 4)`` -> ``{metric: float64 array of shape (..., L)}``.

    dice = 2TP/(2TP+FP+FN), iou = TP/(TP+FP+FN), accuracy = (TP+TN)/all, sensitivity (recall) = TP/(TP+FN),
    specificity = TN/(TN+FP), precision = TP/(TP+FP), mcc = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)),
    bm (bookmaker informedness) = sensitivity + specificity - 1. A 0/0 ratio is NaN (e.g. Dice when the class is absent
    from both prediction and reference), never 0 or 1. Pass per-image counts for per-image values, or counts
    summed over images for pooled values.
    """
    if isinstance(counts, Tensor):
        counts = counts.detach().cpu().numpy()
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != 4:
        raise ValueError(f"counts must have shape (..., num_labels, 4), got {arr.shape}")
    tp, fp, fn, tn = (arr[..., i] for i in range(4))
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in METRIC_FUNCTIONS:
            raise DualsegError(
                f"unknown metric '{name}'{did_you_mean(name, METRIC_FUNCTIONS)}; known: {', '.join(METRIC_FUNCTIONS)}"
            )
        out[name] = METRIC_FUNCTIONS[name](tp, fp, fn, tn)
    return out
