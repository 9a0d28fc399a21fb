"""Checks of model options, shared by every model and block: each returns the checked value or raises one
``DualsegError`` naming the option, what it got and what to use. ``owner`` (a model name such as ``"DS2F"``)
prefixes the message when given."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dualseg.errors import DualsegError, did_you_mean


def _prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def is_positive_int(value: object) -> bool:
    """True for an ``int`` >= 1 (``bool`` is not a count)."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def check_choice(kind: str, value: object, choices: Collection[str], owner: str | None = None) -> str:
    """``value`` when it is one of ``choices``, else an error with a did-you-mean and the choices."""
    if not isinstance(value, str) or value not in choices:
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        raise DualsegError(f"{_prefix(owner)}unknown {kind} {value!r}{hint}; choose one of {', '.join(choices)}")
    return value


def check_positive_int(kind: str, value: object, owner: str | None = None) -> int:
    """``value`` when it is an integer >= 1."""
    if not is_positive_int(value):
        raise DualsegError(f"{_prefix(owner)}{kind} must be a positive integer, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive_ints(kind: str, values: Sequence[int], count: int, owner: str | None = None) -> tuple[int, ...]:
    """``values`` as a tuple of exactly ``count`` positive integers."""
    checked = tuple(values)
    if len(checked) != count or not all(is_positive_int(v) for v in checked):
        words = {2: "two", 3: "three", 4: "four"}.get(count, str(count))
        raise DualsegError(f"{_prefix(owner)}{kind} must be {words} positive integers, got {values!r}")
    return checked


def check_channels(owner: str, channels: Sequence[int]) -> tuple[int, ...]:
    """``channels`` as a tuple of >= 2 positive ints (one width per resolution level)."""
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise DualsegError(f"{owner}: channels must be a list of widths such as (32, 64, 128), got {channels!r}")
    chans = tuple(channels)
    if len(chans) < 2 or not all(is_positive_int(c) for c in chans):
        raise DualsegError(
            f"{owner}: channels must hold at least 2 positive integers (one per level, depth = len - 1), got {chans!r}"
        )
    return chans


def check_dropout(owner: str, dropout: float) -> float:
    """A dropout probability in [0, 1)."""
    if not 0.0 <= float(dropout) < 1.0:
        raise DualsegError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def check_deep_supervision(owner: str, deep_supervision: bool, channels: tuple[int, ...]) -> bool:
    """Deep supervision needs at least one intermediate decoder output, i.e. depth >= 2 (3 channel entries)."""
    if deep_supervision and len(channels) < 3:
        raise DualsegError(
            f"{owner}: deep_supervision needs at least 3 levels in channels to have auxiliary outputs, got {channels!r}"
        )
    return bool(deep_supervision)
