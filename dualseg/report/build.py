"""Assemble the report of one or more evaluated runs and write it as Markdown, self-contained HTML and JSON.

``OUT_DIR/report.md``, ``OUT_DIR/index.html`` (same content, images embedded), ``OUT_DIR/report.json`` (every
number shown), ``OUT_DIR/curves/*.png`` and ``OUT_DIR/overlays/<run>/*.png``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from dualseg.errors import DualsegError
from dualseg.report.curves import plot_curves, plot_runs
from dualseg.report.document import Block, Figure, Gallery, Heading, Text, to_markdown
from dualseg.report.html import to_html
from dualseg.report.overlays import LEGEND, write_case_overlays
from dualseg.report.runs import RunResult, load_runs, select_metrics
from dualseg.report.statistics import compare_runs
from dualseg.report.tables import Cell, Table, class_tables, method_table, pooled_table, significance_table
from dualseg.safety.atomic import atomic_write_text
from dualseg.safety.outputs import writing_into

RUN_INPUTS = ("config.yaml", "split.json", "metrics.csv", "checkpoints", "eval")


def slug(name: str) -> str:
    """A file-name-safe form of a run label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def runs_table(runs: Sequence[RunResult]) -> Table:
    rows = []
    for run in runs:
        s = run.summary
        rows.append([Cell(run.name), Cell(run.model or "?"), Cell(str(run.path)), Cell(str(s.get("epoch", "?"))),
                     Cell(str(s.get("selected_on", "?"))), Cell(str(s.get("dataset", "?"))),
                     Cell(str(s.get("n_images", "?")))])
    header = ["method", "model", "run directory", "checkpoint epoch", "selected on", "dataset", "images"]
    return Table("Evaluated runs", header, rows, columns_right=[False] * 3 + [True, False, False, True])


def significance_section(runs: Sequence[RunResult], metrics: Sequence[str], reference: int) -> tuple[list, list]:
    """Paired tests of every run against ``runs[reference]``; a text block instead where the cases differ."""
    blocks: list[Block] = [Heading("Paired significance tests")]
    records = []
    base = runs[reference]
    for run in runs:
        if run is base:
            continue
        try:
            rows = compare_runs(base, run, metrics)
        except DualsegError as e:
            blocks.append(Text(f"{run.name} vs {base.name}: no paired test: {e}"))
            continue
        blocks.append(significance_table(base.name, run.name, rows))
        records.append({"a": base.name, "b": run.name, "rows": rows})
    return blocks, records


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    split: str = "test",
    metrics: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    cases: int = 2,
    case_metric: str | None = None,
    reference: str | None = None,
    checkpoint: str = "best",
    data_root: str | None = None,
    max_side: int | None = 384,
    title: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the report of ``run_dirs`` (each evaluated on ``split``) to ``out_dir``; return the written files.

    ``cases``: best and worst images drawn per run (0: no overlays; they need the run's checkpoint and data).
    ``case_metric``: the per-image foreground-mean metric that ranks them (default: the first shown metric).
    ``reference``: the run the others are tested against (default: the first). ``out_dir`` follows
    :mod:`dualseg.safety.outputs` (apart from the runs; files dualseg did not write are replaced only with
    ``overwrite``).
    """
    runs = load_runs(run_dirs, split, names)
    shown = select_metrics(runs, metrics)
    out = Path(out_dir)
    # what a report reads of each run; a report folder inside a run directory (runs/x/report) is fine
    read = [r.path / part for r in runs for part in RUN_INPUTS]
    with writing_into(out, read, overwrite=overwrite):
        return _write_report(runs, shown, out, split, cases, case_metric, reference, checkpoint, data_root, max_side,
                             title)


def _write_report(runs: list[RunResult], shown: list[str], out: Path, split: str, cases: int, case_metric: str | None,
                  reference: str | None, checkpoint: str, data_root: str | None, max_side: int | None,
                  title: str | None) -> dict[str, Path]:
    labels = [r.name for r in runs]
    if reference is not None and reference not in labels:
        raise DualsegError(f"--reference '{reference}' is not a run name; names: {', '.join(labels)}")
    ref = labels.index(reference) if reference is not None else 0
    title = title or f"Segmentation report: {', '.join(labels)} ({split} split)"

    blocks: list[Block] = [Heading("Runs"), runs_table(runs), Heading("Results"), method_table(runs, shown)]
    pooled = pooled_table(runs, shown)
    if pooled is not None:
        blocks.append(pooled)
    blocks += [Heading("Per class", 3), *class_tables(runs, shown)]
    tests: list[dict] = []
    if len(runs) > 1:
        test_blocks, tests = significance_section(runs, shown, ref)
        blocks += test_blocks

    blocks.append(Heading("Training curves"))
    with_curves = [(r.name, r.metrics_csv) for r in runs if r.metrics_csv is not None]
    curve_metric = (case_metric or shown[0]) if shown else "dice"
    if len(with_curves) > 1:
        combined = plot_runs(with_curves, out / "curves" / "all_runs.png", curve_metric)
        if combined is not None:
            blocks.append(Figure(combined, f"All runs: training loss and validation {curve_metric} per epoch"))
    curve_figures = []
    for label, metrics_csv in with_curves:
        try:
            png = plot_curves(metrics_csv, out / "curves" / f"{slug(label)}.png", label)
        except ValueError:  # a metrics.csv without epochs
            continue
        curve_figures.append(Figure(png, f"{label}: loss terms and validation metrics"))
    blocks.append(Gallery("Each run", curve_figures))
    missing = [r.name for r in runs if r.metrics_csv is None]
    if missing:
        blocks.append(Text(f"No metrics.csv (no training log) for: {', '.join(missing)}."))

    overlay_records: dict[str, list[dict]] = {}
    if cases > 0:
        metric = case_metric or shown[0]
        blocks += [Heading("Best and worst cases"),
                   Text(f"Each image beside its error overlay ({LEGEND}); ranked by the per-image foreground-mean "
                        f"{metric}, predicted again with each run's {checkpoint} checkpoint.")]
        for run in runs:
            try:
                records = write_case_overlays(run, out / "overlays" / slug(run.name), metric, cases, checkpoint,
                                              data_root, max_side)
            except DualsegError as e:  # no checkpoint or data here: the tables still stand
                print(f"warning: no case overlays for {run.name}: {e}", file=sys.stderr)
                blocks.append(Text(f"{run.name}: no case overlays ({e})."))
                continue
            overlay_records[run.name] = records
            classes = ", ".join(records[0]["classes"]) if records else ""
            blocks.append(Gallery(f"{run.name} (drawn: {classes})", [
                Figure(Path(r["path"]), f"{r['kind']}: {r['name']}, {metric} {r['value']:.4f}") for r in records
            ]))

    files = {"markdown": out / "report.md", "html": out / "index.html", "json": out / "report.json"}
    atomic_write_text(files["markdown"], f"# {title}\n\n" + to_markdown(blocks, out))
    atomic_write_text(files["html"], to_html(blocks, title))
    record = {
        "title": title, "split": split, "metrics": shown, "reference": labels[ref],
        "runs": [{"name": r.name, "path": str(r.path), "model": r.model, "mean": r.summary["mean"],
                  "std": r.summary.get("std"), "per_class": r.summary["per_class"],
                  "dataset_level": (r.summary.get("dataset_level") or {}).get("mean")} for r in runs],
        "tests": tests, "overlays": overlay_records,
    }
    atomic_write_text(files["json"], json.dumps(record, indent=1))
    return files
