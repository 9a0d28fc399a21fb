"""Hooks into a training run, so that what sits above the engine (reports, plots) is passed in, not imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualseg.config import Config


class TrainerCallback:
    """Called by the trainer's main process; override either hook (both do nothing here).

    ``on_epoch_end``: after an epoch's row is logged to ``metrics.csv`` and ``checkpoints/last.pt`` is written.
    ``on_run_end``: once training stopped (epochs, early stopping or time limit) and the checkpoints are on disk.
    """

    def on_epoch_end(self, run_dir: Path, row: dict[str, Any]) -> None:
        """``row``: the epoch's ``metrics.csv`` row (epoch, lr, losses, validation metrics, time)."""

    def on_run_end(self, run_dir: Path, cfg: Config) -> None:
        """``cfg``: the run's resolved config."""
