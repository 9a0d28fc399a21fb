"""Progress output that fits where it goes: tqdm bars on a terminal; in logs, CI or under nohup (stdout or stderr
not a terminal) plain lines, at most one every ``PLAIN_EVERY_S`` seconds, never carriage returns. A training epoch
shorter than that shows only the trainer's one line per epoch; a long one adds a line every interval."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

PLAIN_EVERY_S = 30.0


def interactive() -> bool:
    """True when both stdout and stderr are terminals (the only case where redrawn bars read well)."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class PlainProgress:
    """The part of tqdm's interface dualseg uses (iterate, ``update``, ``set_postfix``, ``close``, context manager)
    writing a plain line such as ``epoch 3/20: 120/500 (24%) 35 s, loss=0.41`` to stdout at most every ``every_s``
    seconds."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str | None = None,
                 initial: int = 0, unit: str = "it", unit_scale: bool = False,
                 every_s: float = PLAIN_EVERY_S) -> None:
        self.iterable = iterable
        self.total = total if total is not None or iterable is None else _len(iterable)
        self.desc, self.unit, self.unit_scale, self.every_s = desc or "progress", unit, unit_scale, every_s
        self.n = initial
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(now - self.start), flush=True)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self, elapsed: float) -> str:
        """``desc: 120/500 it (24%) 35 s, postfix`` (sizes such as ``1.20MB/5.00MB`` with ``unit_scale``)."""
        amounts = [self.n] + ([self.total] if self.total else [])
        if self.unit_scale:
            done = "/".join(tqdm.format_sizeof(a, self.unit) for a in amounts)
        else:
            done = "/".join(f"{a:g}" for a in amounts) + f" {self.unit}"
        if self.total:
            done += f" ({self.n / self.total:.0%})"
        return f"{self.desc}: {done} {elapsed:.0f} s" + (f", {self.postfix}" if self.postfix else "")

    def close(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _len(iterable: Iterable) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             enabled: bool = True, initial: int = 0, unit: str = "it", unit_scale: bool = False,
             leave: bool = False) -> tqdm | PlainProgress:
    """A tqdm bar on a terminal, a :class:`PlainProgress` elsewhere, a silent pass-through when not ``enabled``."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if interactive():
        return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, unit_scale=unit_scale,
                    leave=leave, dynamic_ncols=True)
    return PlainProgress(iterable, total=total, desc=desc, initial=initial, unit=unit, unit_scale=unit_scale)
