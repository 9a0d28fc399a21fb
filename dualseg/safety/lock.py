"""One writer per run directory: an exclusive lock (``fcntl.flock``) on ``RUN_DIR/.dualseg.lock``, which records
the holder's PID and host.

The kernel releases the lock when its process dies, so a crashed run never blocks the next one (the stale file of a
dead PID is simply locked again). A second writer gets ``RUN_DIR is in use by pid N on HOST``. The lock is
re-entrant within a process (``dualseg train`` inside ``dualseg cv`` or ``demo``) and the file is removed on release.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from dualseg.errors import DualsegError

LOCK_FILE = ".dualseg.lock"
_HELD: dict[Path, tuple[int, int]] = {}  # lock path -> (file descriptor, nesting depth) in this process


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """``with RunLock(run_dir):`` hold ``run_dir`` exclusively (the folder must exist)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = (self.run_dir / LOCK_FILE).absolute()

    def __enter__(self) -> RunLock:
        import fcntl

        if self.path in _HELD:
            fd, depth = _HELD[self.path]
            _HELD[self.path] = (fd, depth + 1)
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DualsegError(f"{self.run_dir} is in use by {_holder(self.path)}; wait for it or choose "
                                   "another output_dir") from None
            try:  # the holder before us may have removed the file between our open and our lock: lock the new one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        _HELD[self.path] = (fd, 1)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        fd, depth = _HELD[self.path]
        if depth > 1:
            _HELD[self.path] = (fd, depth - 1)
            return
        del _HELD[self.path]
        with contextlib.suppress(OSError):  # unlinked while still held: a waiting opener retries (see above)
            self.path.unlink(missing_ok=True)
        os.close(fd)
