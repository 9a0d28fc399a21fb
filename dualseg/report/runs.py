"""Read what a finished run left behind: its config, its evaluation summary and its per-image metrics.

A run directory holds ``config.yaml``, ``metrics.csv`` and ``eval/<split>/summary.json`` + ``per_image.csv`` (see
:mod:`dualseg.engine.evaluator`). Only the keys every summary has are required (``classes``, ``mean``,
``per_class``); every other metric or key is shown when present and skipped when absent, so summaries with more
metrics or conventions need no change here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dualseg.errors import DualsegError, did_you_mean

MEAN = "mean"  # the per-image foreground mean, shown beside the classes in per-case tables and tests


@dataclass
class RunResult:
    """One evaluated run: where it is, what it is called, its summary and its per-case values.

    ``per_case[class or MEAN][metric]`` maps each image name to its value (NaN where undefined). ``MEAN`` is each
    image's mean over the foreground classes, as the summary's ``mean``.
    """

    path: Path
    name: str
    model: str
    split: str
    summary: dict[str, Any]
    per_case: dict[str, dict[str, dict[str, float]]]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])

    @property
    def metrics(self) -> list[str]:
        """The metrics of the summary's foreground mean, in its order (entries that are not numbers are skipped)."""
        return [m for m, v in self.summary["mean"].items() if v is None or isinstance(v, int | float)]

    @property
    def case_names(self) -> list[str]:
        first = next(iter(self.per_case[MEAN].values()), {})
        return list(first)

    @property
    def metrics_csv(self) -> Path | None:
        path = self.path / "metrics.csv"
        return path if path.is_file() else None


def _float(text: str) -> float:
    if text in ("", "None", "nan", "NaN"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def _column_key(column: str, classes: Sequence[str]) -> tuple[str, str] | None:
    """``"dice_cell_interior"`` -> ``("dice", "cell_interior")``: the longest class name that ends the column."""
    matches = [c for c in classes if column.endswith(f"_{c}") and len(column) > len(c) + 1]
    if not matches:
        return None
    cls = max(matches, key=len)
    return column[: -len(cls) - 1], cls


def read_per_image(path: Path, classes: Sequence[str], foreground: Sequence[str]) -> dict[str, dict[str, dict]]:
    """Per-case values from ``per_image.csv`` (columns ``name`` and ``<metric>_<class>``), plus the foreground mean.

    Columns that end in no class name are ignored (they belong to summaries this reader does not know).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise DualsegError(f"{path} has no 'name' column; re-run 'dualseg evaluate' to rewrite it")
        columns = {col: key for col in reader.fieldnames if (key := _column_key(col, classes))}
        rows = list(reader)
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names):
        raise DualsegError(f"{path} names some images twice; image names must be unique to pair cases")
    per_case: dict[str, dict[str, dict[str, float]]] = {c: {} for c in classes}
    for col, (metric, cls) in columns.items():
        per_case[cls][metric] = {r["name"]: _float(r[col]) for r in rows}
    metrics = sorted({m for m, _ in columns.values()}, key=[m for m, _ in columns.values()].index)
    per_case[MEAN] = {}
    for metric in metrics:
        values = {}
        for name in names:
            vals = [per_case[c][metric][name] for c in foreground if metric in per_case[c]]
            finite = [v for v in vals if not math.isnan(v)]
            values[name] = sum(finite) / len(finite) if finite else math.nan
        per_case[MEAN][metric] = values
    return per_case


def run_label(config: dict[str, Any], path: Path) -> str:
    """A run's name in tables: its config ``name``, or the model's name when the config kept the default 'run'."""
    name = str(config.get("name") or "")
    model = str((config.get("model") or {}).get("name") or "")
    return name if name and name != "run" else (model or path.name)


def unique_labels(labels: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """Make repeated labels unique by appending the run directory's name (then its parent's)."""
    out = list(labels)
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            out[i] = f"{label} ({paths[i].name})"
    for i, label in enumerate(out):
        if out.count(label) > 1:
            out[i] = f"{labels[i]} ({paths[i].parent.name}/{paths[i].name})"
    return out


def load_run(run_dir: str | Path, split: str = "test", name: str | None = None) -> RunResult:
    """Read ``RUN_DIR/eval/<split>/`` (written by ``dualseg evaluate``) and the run's config."""
    path = Path(run_dir)
    if not path.is_dir():
        raise DualsegError(f"run directory not found: {path}")
    summary_path = path / "eval" / split / "summary.json"
    per_image_path = summary_path.with_name("per_image.csv")
    if not summary_path.is_file() or not per_image_path.is_file():
        evaluated = sorted(p.name for p in (path / "eval").glob("*") if (p / "summary.json").is_file())
        hint = f" (evaluated splits: {', '.join(evaluated)})" if evaluated else ""
        raise DualsegError(f"{path} has no {split} evaluation{hint}; run 'dualseg evaluate {path} --split {split}'")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as e:
        raise DualsegError(f"{summary_path} is not valid JSON ({e}); re-run 'dualseg evaluate'") from e
    missing = [k for k in ("classes", "mean", "per_class") if k not in summary]
    if missing:
        raise DualsegError(f"{summary_path} lacks {', '.join(missing)}; re-run 'dualseg evaluate {path}'")
    config_path = path / "config.yaml"
    config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.is_file() else {}
    foreground = summary.get("foreground_classes") or summary["classes"]
    per_case = read_per_image(per_image_path, summary["classes"], foreground)
    model = str(summary.get("model") or (config.get("model") or {}).get("name") or "")
    return RunResult(path, name or run_label(config, path), model, split, summary, per_case, config)


def load_runs(
    run_dirs: Sequence[str | Path], split: str = "test", names: Sequence[str] | None = None
) -> list[RunResult]:
    """Load several runs; ``names`` overrides their labels (one per run), otherwise labels are made unique."""
    if not run_dirs:
        raise DualsegError("give at least one run directory")
    if names is not None and len(names) != len(run_dirs):
        raise DualsegError(f"--names gives {len(names)} names for {len(run_dirs)} runs; give one per run")
    runs = [load_run(d, split, names[i] if names else None) for i, d in enumerate(run_dirs)]
    if names is None:
        labels = unique_labels([r.name for r in runs], [r.path for r in runs])
        for run, label in zip(runs, labels):
            run.name = label
    elif len(set(names)) != len(names):
        raise DualsegError(f"--names must be unique, got {', '.join(names)}")
    return runs


def select_metrics(runs: Sequence[RunResult], wanted: Sequence[str] | None) -> list[str]:
    """The metrics to show: ``wanted`` (each must exist in some run), or every metric of any run, in order."""
    available: list[str] = []
    for run in runs:
        available += [m for m in run.metrics if m not in available]
    if not wanted:
        return available
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise DualsegError(f"metric '{unknown[0]}' is in no run's summary{did_you_mean(unknown[0], available)}; "
                           f"available: {', '.join(available)}")
    return list(wanted)
