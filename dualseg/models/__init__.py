"""Segmentation models. Importing this package registers every model in ``dualseg.registry.MODELS``."""

from __future__ import annotations

import dualseg.models.danie  # noqa: F401  (registers danie_s, danie_l)
from dualseg.models import baselines, drfl, ds2f  # noqa: F401  (registers the baselines, DRFL and DS2F)
from dualseg.models.base import SegmentationModel

__all__ = ["SegmentationModel"]
