"""The output-folder rules every verb that writes follows (predict, evaluate, export, report, make-sr-targets,
convert-nnunet, train):

- an output folder is never an input, never inside an input folder and never contains an input
  (:func:`check_separate`);
- an existing file is replaced only when dualseg wrote it there: each output folder keeps a manifest of the files
  written into it (``.dualseg-written``), and any other file is refused unless the verb is given ``--overwrite``
  (:meth:`OutputFolder.claim`, called by every atomic writer through :func:`claim`);
- a command that fails removes what it created: a new output folder goes whole, an existing one loses only the
  entries that were not there before (unless ``keep()`` says the partial result is worth keeping, as a run with
  a checkpoint is);
- a run directory is written by one process at a time (:mod:`dualseg.safety.lock`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

from dualseg.errors import DualsegError
from dualseg.safety.lock import RunLock

MANIFEST = ".dualseg-written"
_ACTIVE: ContextVar[tuple[OutputFolder, ...]] = ContextVar("dualseg_output_folders", default=())


def check_separate(output: str | Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an output (file or folder) that is an input, lies inside an input folder or contains an input."""
    out = Path(output).resolve()
    for given in inputs:
        src = Path(given).resolve()
        if out == src:
            raise DualsegError(f"the output {output} is the input {given}; choose a separate output folder")
        if src.is_dir() and out.is_relative_to(src):
            raise DualsegError(f"the output {output} lies inside the input folder {given}; choose an output folder "
                               "outside it")
        if src.is_relative_to(out):
            raise DualsegError(f"the output folder {output} contains the input {given}; choose an output folder "
                               "apart from the inputs")


class OutputFolder:
    """An output folder and the manifest of the files dualseg wrote into it."""

    def __init__(self, root: Path, overwrite: bool | None = False) -> None:
        """``overwrite``: replace any file; None: never replace a stranger's file (a verb without --overwrite)."""
        self.root = root.resolve()
        self.overwrite = overwrite
        manifest = self.root / MANIFEST
        self.written = set(manifest.read_text(errors="replace").splitlines()) if manifest.is_file() else set()

    def claim(self, path: Path) -> None:
        """Allow writing ``path`` (inside the folder): refuse to replace a file dualseg did not write there, and
        record it in the manifest before it is written (a crash afterwards leaves a name, never a stranger's file)."""
        rel = path.resolve().relative_to(self.root).as_posix()
        if rel in self.written:
            return
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            hint = "pass --overwrite to replace it, or " if self.overwrite is False else ""
            raise DualsegError(f"{path} exists and was not written by dualseg; {hint}choose another output folder")
        self.written.add(rel)
        with open(self.root / MANIFEST, "a") as f:
            f.write(rel + "\n")


def claim(path: str | Path) -> None:
    """Claim ``path`` in the innermost active output folder that holds it; outside any, nothing is checked (the
    library used directly, writing where its caller says)."""
    path = Path(path)
    resolved = path.resolve()
    for folder in reversed(_ACTIVE.get()):
        if resolved.is_relative_to(folder.root):
            folder.claim(path)
            return


def make_dirs(path: Path) -> Path | None:
    """Create ``path`` and its missing parents; return the highest folder this call created (None: it existed).
    Race-free: a level another process creates meanwhile is not counted as ours."""
    missing = []
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    ours = None
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        ours = ours or folder
    return ours


def _discard(out: Path, created: Path | None, before: set[str]) -> None:
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    elif out.is_dir():
        for name in set(os.listdir(out)) - before:
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


@contextlib.contextmanager
def writing_into(
    root: str | Path, inputs: Sequence[str | Path] = (), overwrite: bool | None = False, lock: str | Path | None = None,
    keep: Callable[[], bool] | None = None, enabled: bool = True,
) -> Iterator[OutputFolder | None]:
    """Write into the folder ``root`` under the rules above; ``lock``: a run directory to hold exclusively while
    writing (it is created if needed). ``enabled=False`` (e.g. the non-writing ranks of a multi-GPU run): no rules,
    nothing created."""
    if not enabled:
        yield None
        return
    out = Path(root)
    check_separate(out, inputs)
    created = make_dirs(Path(lock)) if lock is not None else None
    with RunLock(lock) if lock is not None else contextlib.nullcontext():
        created = created or make_dirs(out)
        before = set(os.listdir(out))
        folder = OutputFolder(out, overwrite)
        token = _ACTIVE.set((*_ACTIVE.get(), folder))
        try:
            yield folder
        except BaseException:
            if keep is None or not keep():
                _discard(out, created, before)
            raise
        finally:
            _ACTIVE.reset(token)
