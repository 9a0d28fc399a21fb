"""Registered variants as small entry functions over one options set (as timm's ``_builder.py``): an entry
function builds its model class with a preset, and takes the class's other options as its signature, so the
registry checks keyword arguments against them (unknown options -> did-you-mean errors)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


def variant_of(*builders: Callable[..., Any], fixed: Iterable[str] = ()) -> Callable[[T], T]:
    """Give the decorated entry function the options of ``builders`` (each name once, first wins) without the
    ``fixed`` ones (those its preset sets) as its signature."""
    seen = set(fixed)
    params = []
    for builder in builders:
        for name, param in inspect.signature(builder).parameters.items():
            if name not in seen:
                seen.add(name)
                params.append(param)

    def decorate(entry: T) -> T:
        entry.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return entry

    return decorate


def build_variant(model: Callable[..., Any], preset: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """``model(**preset, **options)``: one registered variant."""
    return model(**preset, **options)
