"""Segmentation models. Importing this package registers every model in ``dualseg.registry.MODELS``."""

from __future__ import annotations

from dualseg.models import baselines, danie, drfl, ds2f, efen  # noqa: F401  (registers every model)
from dualseg.models.base import SegmentationModel

__all__ = ["SegmentationModel"]
