"""The text table ``dualseg evaluate`` prints for an evaluation summary."""

from __future__ import annotations


def format_summary(summary: dict) -> str:
    """A text table: per-class mean ± std over images, then the foreground mean and the pooled (dataset-level) value."""
    metrics = list(summary["mean"])
    width = 18

    def cell(stats: dict) -> str:
        mean, std = stats.get("mean"), stats.get("std")
        if mean is None:
            return f"{'n/a':>{width}}"
        return f"{mean:>{width - 9}.4f} ± {std:.4f}" if std is not None else f"{mean:>{width}.4f}"

    def plain(values: dict) -> str:
        return "".join(f"{(values.get(m) if values.get(m) is not None else float('nan')):>{width}.4f}" for m in metrics)

    lines = [f"{'class':<16}" + "".join(f"{m:>{width}}" for m in metrics)]
    lines += [f"{name:<16}" + "".join(cell(v[m]) for m in metrics) for name, v in summary["per_class"].items()]
    lines.append(f"{'mean (fg)':<16}" + plain(summary["mean"]))
    lines.append(f"{'pooled (fg)':<16}" + plain(summary["dataset_level"]["mean"]))
    return "\n".join(lines)
