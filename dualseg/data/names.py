"""Name tables: the small registries of the data layer (dataset descriptions, catalogue entries, converters)."""

from __future__ import annotations

from typing import TypeVar

from dualseg.errors import DualsegError, did_you_mean

T = TypeVar("T")


class NameTable(dict[str, T]):
    """A name -> item table whose :meth:`pick` turns an unknown name into a one-line did-you-mean error.

    Args:
        kind: what the items are, for the error ("dataset description").
        hint: the error's tail, with ``{known}`` standing for the known names ("known: {known}").
    """

    def __init__(self, kind: str, hint: str = "known: {known}") -> None:
        super().__init__()
        self.kind = kind
        self.hint = hint

    def register(self, name: str, item: T) -> T:
        """Add (or replace) ``name``; returns ``item``."""
        self[name] = item
        return item

    def pick(self, name: str) -> T:
        """The item named ``name``; an unknown name raises, naming the closest known name and the hint."""
        if name not in self:
            known = ", ".join(sorted(self))
            raise DualsegError(
                f"unknown {self.kind} '{name}'{did_you_mean(name.lower(), self)}; {self.hint.format(known=known)}"
            )
        return self[name]
