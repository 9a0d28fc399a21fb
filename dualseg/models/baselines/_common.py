"""Option checks shared by the baselines: one clear ``DualsegError`` per bad value."""

from __future__ import annotations

from collections.abc import Sequence

from dualseg.errors import DualsegError


def check_channels(model: str, channels: Sequence[int]) -> tuple[int, ...]:
    """``channels`` as a tuple of >= 2 positive ints (one width per resolution level)."""
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise DualsegError(f"{model}: channels must be a list of widths such as (32, 64, 128), got {channels!r}")
    chans = tuple(channels)
    if len(chans) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in chans):
        raise DualsegError(
            f"{model}: channels must hold at least 2 positive integers (one per level, depth = len - 1), got {chans!r}"
        )
    return chans


def check_dropout(model: str, dropout: float) -> float:
    if not 0.0 <= float(dropout) < 1.0:
        raise DualsegError(f"{model}: dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def check_deep_supervision(model: str, deep_supervision: bool, channels: tuple[int, ...]) -> bool:
    """Deep supervision needs at least one intermediate decoder output, i.e. depth >= 2 (3 channel entries)."""
    if deep_supervision and len(channels) < 3:
        raise DualsegError(
            f"{model}: deep_supervision needs at least 3 levels in channels to have auxiliary outputs, got {channels!r}"
        )
    return bool(deep_supervision)
