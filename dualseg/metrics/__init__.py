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
from dualseg.metrics.conventions import CONVENTIONS, get_convention
from dualseg.metrics.image_quality import image_quality
from dualseg.metrics.ranking import average_precision, average_precision_per_class
from dualseg.metrics.summary import CONVENTION, STD_DDOF, summarize
from dualseg.metrics.surface import surface_metrics

__all__ = [
    "CONVENTION",
    "CONVENTIONS",
    "average_precision",
    "average_precision_per_class",
    "get_convention",
    "image_quality",
    "surface_metrics",
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
