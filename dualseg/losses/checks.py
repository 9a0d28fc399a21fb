"""Checks of loss options: each returns the checked value or raises one ``DualsegError`` naming the loss and the
option (``name``, ``key``)."""

from __future__ import annotations

import math

from dualseg.errors import DualsegError


def check_positive_number(name: str, key: str, value: float) -> float:
    """``value`` as a float when it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise DualsegError(f"loss '{name}': {key} must be a finite number > 0, got {value!r}")
    return float(value)


def check_non_negative_number(name: str, key: str, value: float) -> float:
    """``value`` as a float when it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DualsegError(f"loss '{name}': {key} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_int_at_least(name: str, key: str, value: int, low: int) -> int:
    """``value`` when it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise DualsegError(f"loss '{name}': {key} must be an integer >= {low}, got {value!r}")
    return value
