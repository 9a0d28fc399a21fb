"""Decorator registries (like timm's): every model and loss is built by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from dualseg.errors import DualsegError, did_you_mean, short_repr

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A name -> builder table. ``build`` checks keyword arguments against the builder's signature."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            key = name or builder.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._builders[key] = builder
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._builders:
            raise DualsegError(
                f"unknown {self.kind} {short_repr(name)}{did_you_mean(str(name)[:100], self._builders)}; "
                f"known: {', '.join(self.names())}"
            )
        return self._builders[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        builder = self.get(name)
        params = inspect.signature(builder).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not accepts_any:
            for key in kwargs:
                if key not in params:
                    valid = [p for p in params if p != "self"]
                    raise DualsegError(
                        f"{self.kind} '{name}' has no option {short_repr(key)}{did_you_mean(str(key)[:100], valid)}; "
                        f"valid options: {', '.join(valid)}"
                    )
        return builder(**kwargs)


MODELS = Registry("model")
LOSSES = Registry("loss")
