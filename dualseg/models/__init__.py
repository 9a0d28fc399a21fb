"""Segmentation models. Importing this package registers every model in ``dualseg.registry.MODELS``."""

from __future__ import annotations

from dualseg.models import (  # noqa: F401  (registers the baselines, DRFL and DS2F)
    baselines,
    danie,  # noqa: F401  (registers danie_s, danie_l)
    drfl,
    ds2f,
)
from dualseg.models.base import SegmentationModel

__all__ = ["SegmentationModel"]
