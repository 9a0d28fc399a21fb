"""Segmentation metrics: per-class confusion counts, metrics derived from them, and evaluation summaries."""

from __future__ import annotations

from dualseg.metrics.confusion import (
    COUNT_NAMES,
    METRIC_FUNCTIONS,
    METRIC_NAMES,
    batch_confusion_counts,
    confusion_counts,
    logits_to_labels,
    logits_to_probs,
    metrics_from_counts,
    num_labels_for,
)
from dualseg.metrics.summary import CONVENTION, STD_DDOF, summarize

__all__ = [
    "CONVENTION",
    "COUNT_NAMES",
    "METRIC_FUNCTIONS",
    "METRIC_NAMES",
    "STD_DDOF",
    "batch_confusion_counts",
    "confusion_counts",
    "logits_to_labels",
    "logits_to_probs",
    "metrics_from_counts",
    "num_labels_for",
    "summarize",
]
