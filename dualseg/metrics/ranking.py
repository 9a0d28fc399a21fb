"""Threshold-free metrics from class probabilities: average precision (PR-AUC), one-vs-rest per class.

Average precision is the step-wise area under the precision-recall curve,
``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order (no interpolation; the
definition of scikit-learn's ``average_precision_score``). Ties share one threshold. A class with no positive
pixel has no recall, so its AP is NaN (scikit-learn warns and returns 0 there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def average_precision(scores: np.ndarray | Tensor, positive: np.ndarray | Tensor) -> float:
    """AP of one binary problem: ``scores`` (any shape) of being positive, ``positive`` (same shape, bool/0-1)."""
    s = _numpy(scores).astype(np.float64).ravel()
    y = _numpy(positive).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.shape} vs {y.shape}")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last index of each distinct score
    tp = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1
    precision = tp / predicted
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_gain * precision))


def average_precision_per_class(probs: np.ndarray | Tensor, target: np.ndarray | Tensor,
                                valid: np.ndarray | Tensor | None = None,
                                classes: Sequence[int] | None = None) -> np.ndarray:
    """One-vs-rest AP for each class: ``probs`` (L, ...) class probabilities, ``target`` (...) labels -> (L,).

    ``valid`` (same shape as ``target``) keeps only those pixels (FOV). ``classes``: only these (others NaN).
    """
    p = _numpy(probs)
    t = _numpy(target).astype(np.int64)
    if p.shape[1:] != t.shape:
        raise ValueError(f"probabilities {p.shape} do not match labels {t.shape}: expected (L, *labels.shape)")
    if valid is not None:
        keep = _numpy(valid).astype(bool)
        p, t = p[:, keep], t[keep]
    out = np.full(p.shape[0], np.nan)
    for c in range(p.shape[0]) if classes is None else classes:
        out[c] = average_precision(p[c], t == c)
    return out


def _numpy(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64 if x.is_floating_point() else x.dtype).numpy()
    return np.asarray(x)
