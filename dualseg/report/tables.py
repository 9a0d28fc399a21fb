"""Tables as the papers print them: methods x metrics, ``mean ± std``, the best value of each column in bold.

A :class:`Table` holds text cells and a bold flag; it renders to Markdown here and to HTML in
:mod:`dualseg.report.html`, so both show the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dualseg.report.runs import RunResult

# Metrics where smaller is better (distances, error rates); every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"hd", "hd95", "asd", "assd", "msd", "nsd_error", "fpr", "fnr", "error", "loss", "mse",
                             "mae", "rmse", "lpips"})
MISSING = "–"  # shown where a run has no value (metric absent, or undefined on every image)


def higher_is_better(metric: str) -> bool:
    return metric.lower() not in LOWER_IS_BETTER


@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    note: str = ""
    columns_right: list[bool] = field(default_factory=list)  # right-align numeric columns

    def to_markdown(self) -> str:
        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        def cell(c: Cell) -> str:
            return f"**{esc(c.text)}**" if c.bold and c.text != MISSING else esc(c.text)

        right = self.columns_right or [i > 0 for i in range(len(self.header))]
        lines = [f"**{esc(self.title)}**", "", "| " + " | ".join(esc(h) for h in self.header) + " |",
                 "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


def _finite(x: object) -> bool:
    """A real number that is not NaN or infinite (None, strings and nested values from newer summaries are not)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def format_value(mean: float | None, std: float | None = None, digits: int = 4) -> str:
    """``0.8213 ± 0.0310``; the mean alone when there is no std; ``–`` when there is no mean."""
    if not _finite(mean):
        return MISSING
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if _finite(std) else f"{mean:.{digits}f}"


def metric_table(
    title: str,
    values: Mapping[str, Mapping[str, tuple[float | None, float | None]]],
    metrics: Sequence[str],
    digits: int = 4,
    note: str = "",
    first_header: str = "method",
    bold_best: bool = True,
) -> Table:
    """Rows ``values`` (row label -> metric -> (mean, std)), one column per metric; the best mean in bold.

    "Best" is the largest mean (smallest for :data:`LOWER_IS_BETTER` metrics) compared at the printed precision,
    so rows that print the same value are bold together. A column with fewer than two values has no bold, and
    ``bold_best=False`` marks none (rows that are not competing methods, such as folds).
    """
    rows = []
    best: dict[str, float] = {}
    for metric in metrics if bold_best else ():
        means = [round(v[metric][0], digits) for v in values.values() if metric in v and _finite(v[metric][0])]
        if len(means) >= 2:
            best[metric] = max(means) if higher_is_better(metric) else min(means)
    for label, row in values.items():
        cells = [Cell(label)]
        for metric in metrics:
            mean, std = row.get(metric, (None, None))
            bold = metric in best and _finite(mean) and round(mean, digits) == best[metric]
            cells.append(Cell(format_value(mean, std, digits), bold))
        rows.append(cells)
    return Table(title, [first_header, *metrics], rows, note)


def method_table(runs: Sequence[RunResult], metrics: Sequence[str], digits: int = 4) -> Table:
    """Methods x metrics: the foreground mean over images ± the std over images of each image's foreground mean."""
    values = {r.name: {m: (r.summary["mean"].get(m), (r.summary.get("std") or {}).get(m)) for m in metrics}
              for r in runs}
    classes = ", ".join(runs[0].summary.get("foreground_classes") or runs[0].classes)
    return metric_table(f"{_split_text(runs)}: mean over foreground classes ({classes})", values, metrics, digits,
                        note=_convention_note(runs))


def class_tables(runs: Sequence[RunResult], metrics: Sequence[str], digits: int = 4) -> list[Table]:
    """One methods x metrics table per class: mean ± std over images of that class's value."""
    classes: list[str] = []
    for run in runs:
        classes += [c for c in run.classes if c not in classes]
    tables = []
    for cls in classes:
        values = {}
        for run in runs:
            stats = run.summary["per_class"].get(cls, {})
            values[run.name] = {m: (stats[m].get("mean"), stats[m].get("std")) for m in metrics
                                if isinstance(stats.get(m), dict)}
        tables.append(metric_table(f"{_split_text(runs)}: class '{cls}'", values, metrics, digits))
    return tables


def pooled_table(runs: Sequence[RunResult], metrics: Sequence[str], digits: int = 4) -> Table | None:
    """Methods x metrics from the confusion counts pooled over all images (no std); None when no run has them."""
    values = {}
    for run in runs:
        pooled = (run.summary.get("dataset_level") or {}).get("mean") or {}
        values[run.name] = {m: (pooled[m], None) for m in metrics if m in pooled}
    if not any(values.values()):
        return None
    return metric_table(f"{_split_text(runs)}: pooled over all pixels of all images (foreground mean)", values,
                        [m for m in metrics if any(m in v for v in values.values())], digits)


def _split_text(runs: Sequence[RunResult]) -> str:
    counts = sorted({r.summary.get("n_images") for r in runs if r.summary.get("n_images")})
    n = f", {'/'.join(str(c) for c in counts)} images" if counts else ""
    return f"{runs[0].split} split{n}"


def _convention_note(runs: Sequence[RunResult]) -> str:
    conventions = sorted({str(r.summary.get("convention")) for r in runs if r.summary.get("convention")})
    ddof = sorted({r.summary.get("std_ddof") for r in runs if r.summary.get("std_ddof") is not None})
    parts = []
    if conventions:
        parts.append(f"Convention: {'; '.join(conventions)}")
    if ddof:
        parts.append(f"std over images (ddof {'/'.join(str(d) for d in ddof)})")
    parts.append("best value per column in bold")
    return ". ".join(parts) + "."


def significance_table(name_a: str, name_b: str, rows: Sequence[Mapping], digits: int = 4) -> Table:
    """Rows of :func:`dualseg.report.statistics.compare_runs` as a table; p-values below 0.05 in bold."""
    from dualseg.report.statistics import SIGNIFICANCE, format_p

    def num(x: float | None) -> str:
        return MISSING if not _finite(x) else f"{x:+.{digits}f}"

    cells = []
    for r in rows:
        cells.append([Cell(r["class"]), Cell(r["metric"]), Cell(str(r["n"])),
                      Cell(format_value(r["mean_a"], None, digits)), Cell(format_value(r["mean_b"], None, digits)),
                      Cell(num(r["mean_diff"])),
                      Cell(format_p(r["wilcoxon_p"]), r["wilcoxon_p"] is not None and r["wilcoxon_p"] < SIGNIFICANCE),
                      Cell(format_p(r["t_p"]), r["t_p"] is not None and r["t_p"] < SIGNIFICANCE)])
    header = ["class", "metric", "n", name_a, name_b, "Δ (B − A)", "p Wilcoxon", "p t-test"]
    note = (f"Paired by image; two-sided Wilcoxon signed-rank and paired t-test (SciPy); p < {SIGNIFICANCE} in bold; "
            "'mean' = each image's mean over the foreground classes.")
    return Table(f"{name_b} (B) vs {name_a} (A)", header, cells, note,
                 columns_right=[False, False] + [True] * 6)


def format_cv_markdown(record: dict[str, Any]) -> str:
    """``cv.md`` of a :func:`dualseg.engine.cv.run_cv` record: one table of members x metrics ending in the
    ``mean ± std`` row, then one such table per class."""
    agg = record["aggregate"]
    metrics = list(agg["mean"])
    label = "mean ± std"
    what = " x ".join(x for x in (f"{record['folds']} folds" if record["folds"] else "",
                                  f"{record['seeds']} seeds" if record["seeds"] else "") if x)
    splits = sorted({str(m["split"]) for m in record["members"]})
    budget = record["budget"]
    iters = budget["iters_per_epoch"] or "one pass over the training images of"
    budget_text = f"{budget['epochs']} epochs x {iters} steps of batch {budget['batch_size']}"
    lines = [f"# {record['name']}: {what}", "",
             f"Model {record['model']}; each member evaluated on its {'/'.join(splits)} split with its "
             f"{record['checkpoint']} checkpoint; budget {budget_text}. A member's value is its mean over "
             f"images ({record.get('convention') or 'see summary.json'}); the last row is the mean ± sample std "
             f"(ddof {agg['std_ddof']}) over the {agg['n_members']} members.", ""]

    def rows(member_values: list[dict], stats: dict) -> dict:
        values = {m["name"]: {k: (v.get(k), None) for k in metrics} for m, v in zip(record["members"], member_values)}
        values[label] = {k: (s["mean"], s["std"]) for k, s in stats.items()}
        return values

    lines.append(metric_table("Foreground mean", rows([m["mean"] for m in record["members"]], agg["mean"]),
                              metrics, first_header="member", bold_best=False).to_markdown())
    for cls, stats in agg["per_class"].items():
        per_member = [{k: s["values"][i] for k, s in stats.items()} for i in range(len(record["members"]))]
        lines += ["", metric_table(f"Class '{cls}'", rows(per_member, stats), metrics, first_header="member",
                                   bold_best=False).to_markdown()]
    return "\n".join(lines) + "\n"
