"""``dualseg train DATA --budget-min N``: plan a config for a dataset folder, train it, and keep the plan (with its
reasons and the fingerprint) in the run directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dualseg.benchmark import machine
from dualseg.config import Config, config_from_dict
from dualseg.engine.callbacks import TrainerCallback
from dualseg.errors import DualsegError
from dualseg.planning.fingerprint import DataProblems, fingerprint
from dualseg.planning.plan import plan_config
from dualseg.planning.render import render_plan
from dualseg.safety.atomic import atomic_write_text

PLAN_FILE = "plan.yaml"
FINGERPRINT_FILE = "fingerprint.json"


@dataclass
class PlannedRun:
    config: Config
    text: str  # the commented YAML of the plan
    fingerprint: dict


def plan_folder(data: str | Path, model: str, budget_min: float | None, overrides: list[str],
                dataset: str = "auto", device: str = "auto", progress: bool = True) -> PlannedRun:
    """Fingerprint ``data``, plan ``model`` for ``budget_min`` minutes on this machine, apply ``overrides``."""
    if budget_min is None:
        raise DualsegError(f"{data} is a dataset folder: give --budget-min N (the minutes of training to plan for), "
                           "or a YAML config")
    try:
        fp = fingerprint(data, dataset, progress)
    except DataProblems as e:
        raise DualsegError(f"{e}; a plan needs a clean folder") from e
    plan = plan_config(fp, Path(data).resolve(), model, budget_min, device, overrides)
    info = machine()
    text = render_plan(plan, fp, f"{info.get('cpu', 'this machine')} ({info.get('cpu_kind', '')})")
    return PlannedRun(config_from_dict(yaml.safe_load(text)), text, fp)


class PlanFiles(TrainerCallback):
    """Writes ``plan.yaml`` (the commented plan) and ``fingerprint.json`` into the run directory after the first
    epoch (the run directory is the trainer's from then on)."""

    def __init__(self, planned: PlannedRun) -> None:
        self.planned = planned
        self.written = False

    def on_epoch_end(self, run_dir: Path, row: dict[str, Any]) -> None:
        if not self.written:
            atomic_write_text(run_dir / PLAN_FILE, self.planned.text)
            atomic_write_text(run_dir / FINGERPRINT_FILE, json.dumps(self.planned.fingerprint, indent=1))
            self.written = True
