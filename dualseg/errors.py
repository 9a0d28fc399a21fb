"""User-facing errors: one clear line that names the problem and, where obvious, the fix."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class DualsegError(Exception):
    """An error caused by the user's input (path, file, config, name). The CLI prints it as one line."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an untrusted value never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


MAX_MESSAGE = 1000  # characters of an error line; a longer one (some value reached it uncut) is cut


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line of at most :data:`MAX_MESSAGE` characters.

    A DataLoader worker re-raises its error with the worker's traceback inside the message; only the original
    message (the last line) is kept.
    """
    lines = [line for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and any("Traceback" in line for line in lines):
        last = lines[-1]
        prefix = f"{type(error).__module__}.{type(error).__name__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last
    else:
        text = " ".join(line.strip() for line in lines)
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE - 3]}..."


_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space or choose another output folder",
    errno.EDQUOT: "free some space or choose another output folder",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another output folder",
    errno.ENOTDIR: "a file is in the way of a folder on that path; choose another output folder",
    errno.EEXIST: "a file is in the way of a folder on that path; choose another output folder",
}


def describe_os_error(error: OSError) -> str:
    """'<what failed>: <path>; <fix>' for an operating-system error (disk full, permission denied...)."""
    what = error.strerror or str(error)
    where = f": {error.filename}" if error.filename else ""
    hint = _OS_ERROR_HINTS.get(error.errno or 0, "")
    return f"{what}{where}" + (f"; {hint}" if hint else "")
