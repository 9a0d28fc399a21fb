"""User-facing errors: one clear line that names the problem and, where obvious, the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DualsegError(Exception):
    """An error caused by the user's input (path, file, config, name). The CLI prints it as one line."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
