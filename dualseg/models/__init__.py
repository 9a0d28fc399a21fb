"""Segmentation models. Importing this package registers every model in ``dualseg.registry.MODELS``."""

from __future__ import annotations

from dualseg.models import baselines, drfl  # noqa: F401  (registers the baselines and DRFL)
from dualseg.models.base import SegmentationModel

__all__ = ["SegmentationModel"]
