"""Training curves from a run's ``metrics.csv``: one panel of loss terms, one of validation metrics."""

from __future__ import annotations

import csv
from pathlib import Path

from dualseg.config import Config
from dualseg.engine.callbacks import TrainerCallback
from dualseg.safety.atomic import atomic_write


def plot_curves(metrics_csv: str | Path, out_png: str | Path, title: str | None = None) -> Path:
    """Plot every ``train_*`` column (loss terms) and every ``val_*``/``test_*`` metric against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{metrics_csv} holds no epochs")
    epochs = [int(r["epoch"]) for r in rows]

    def series(key: str) -> list[float]:
        return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]

    losses = [k for k in rows[0] if k.startswith("train_")]
    metrics = [k for k in rows[0] if k.startswith(("val_", "test_")) and "dice" in k]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in losses:
        axes[0].plot(epochs, series(key), label=key.removeprefix("train_"), lw=2 if key == "train_loss" else 1)
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss terms")
    axes[0].legend(fontsize=8)
    for key in metrics:  # only the epochs that ran validation (train.val_every > 1 leaves the others empty)
        points = [(e, v) for e, v in zip(epochs, series(key)) if v == v]
        axes[1].plot([e for e, _ in points], [v for _, v in points], marker="o", ms=3, label=key)
    axes[1].set(xlabel="epoch", ylabel="Dice", title="validation")
    if metrics:
        axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_write(out_png, lambda f: fig.savefig(f, dpi=110, format="png"))
    plt.close(fig)
    return out_png


def _read_rows(metrics_csv: Path) -> list[dict[str, str]]:
    with open(metrics_csv, newline="") as f:
        return list(csv.DictReader(f))


def plot_runs(runs: list[tuple[str, Path]], out_png: str | Path, metric: str = "dice") -> Path | None:
    """All runs in one figure: training loss (left) and the validation ``metric`` (right) per epoch, one line each.

    ``runs`` are (label, metrics.csv) pairs; runs whose file holds no epochs are left out, and None is returned when
    none has any. The validation column is ``val_<metric>`` (``test_<metric>`` for runs that selected on test).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plotted = False
    for label, path in runs:
        rows = _read_rows(path)
        if not rows:
            continue
        epochs = [int(r["epoch"]) for r in rows]
        for ax, key in ((axes[0], "train_loss"), (axes[1], f"val_{metric}"), (axes[1], f"test_{metric}")):
            if key in rows[0]:
                values = [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]
                ax.plot(epochs, values, label=label if key.startswith(("train", "val")) else f"{label} (test)")
                plotted = True
    if not plotted:
        plt.close(fig)
        return None
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    axes[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric} (foreground mean)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_write(out_png, lambda f: fig.savefig(f, dpi=110, format="png"))
    plt.close(fig)
    return out_png


class CurvesCallback(TrainerCallback):
    """Writes ``RUN_DIR/curves.png`` from ``metrics.csv`` when a training run ends."""

    def on_run_end(self, run_dir: Path, cfg: Config) -> None:
        if (run_dir / "metrics.csv").is_file():
            plot_curves(run_dir / "metrics.csv", run_dir / "curves.png", f"{cfg.name} ({cfg.model.name})")
