"""Evaluate a trained run on one split of its own split file: ``RUN_DIR/eval/<split>/summary.json`` and
``per_image.csv``, with threshold tuning on the selection split when asked."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tqdm import tqdm

from dualseg.engine.evaluator import evaluate_dataset
from dualseg.engine.thresholds import tune_threshold
from dualseg.errors import DualsegError
from dualseg.metrics.conventions import get_convention
from dualseg.safety.atomic import atomic_write_text
from dualseg.safety.outputs import claim, writing_into


def evaluate_run(
    run_dir: str | Path, split: str = "val", which: str = "best", data_root: str | None = None, progress: bool = True,
    *,
    convention: str | None = None,
    threshold: float | None = None,
    tune: bool | None = None,
    select_on: str | None = None,
    overwrite: bool = False,
) -> tuple[dict, Path]:
    """Evaluate a run's checkpoint on one split of its own split file; write ``RUN_DIR/eval/<split>/``, holding
    the run directory's lock (not while it trains) under the output-folder rules of :mod:`dualseg.safety.outputs`.

    ``convention``, ``threshold`` and ``tune`` (choose the threshold on the selection split) override the run's
    ``eval`` config. ``select_on`` is the split thresholds are chosen on, default the run's ``train.select_on``
    (``val``); ``test`` exists only to reproduce papers that did so, prints a warning and is recorded.
    """
    from dualseg.inference.loading import find_checkpoint, is_package

    run_dir = Path(run_dir)
    if is_package(run_dir):
        raise DualsegError(f"{run_dir} is a model package, which holds no data split; evaluate the run directory "
                           "or checkpoint it was exported from")
    root = run_dir if run_dir.is_dir() else find_checkpoint(run_dir, which).parent.parent
    out = root / "eval" / split
    with writing_into(out, overwrite=overwrite, lock=root):
        for name in ("summary.json", "per_image.csv"):  # refused before the work, not after it
            claim(out / name)
        summary = _evaluate(run_dir, split, which, data_root, progress, convention, threshold, tune, select_on)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        atomic_write_text(out / "per_image.csv", per_image_csv(summary))
    return summary, out


def _evaluate(run_dir: Path, split: str, which: str, data_root: str | None, progress: bool, convention: str | None,
              threshold: float | None, tune: bool | None, select_on: str | None) -> dict:
    from dualseg.data.build import make_dataset, prepare_data, sr_spec
    from dualseg.inference.loading import load_inference_model
    from dualseg.runtime import resolve_device

    device = resolve_device("auto")
    loaded = load_inference_model(run_dir, which, device)
    cfg = loaded.config
    if data_root:
        cfg.data.root = data_root
    split_file = run_dir / "split.json" if run_dir.is_dir() else None
    bundle = prepare_data(cfg, split_file)
    if not bundle.split.get(split):
        raise DualsegError(f"the run's split has no '{split}' images; choose one of "
                           f"{', '.join(k for k, v in bundle.split.items() if v)}")
    model, spec = loaded.model, loaded.spec  # the run's own input and precision, so the numbers agree
    dataset = make_dataset(cfg, bundle, split, train=False)
    if convention is not None:
        cfg.eval.convention = get_convention(convention).name
    if threshold is not None:
        cfg.eval.threshold = threshold
    if tune is not None:
        cfg.eval.tune_threshold = tune
    if select_on is not None and not cfg.eval.tune_threshold:
        raise DualsegError("select_on is the split a threshold is tuned on: add --tune-threshold (checkpoints are "
                           "selected during training by train.select_on)")
    selection = select_on or cfg.train.select_on
    if selection not in ("val", "test"):
        raise DualsegError(f"select_on must be val or test, got '{selection}'")
    if cfg.train.select_on == "test":
        tqdm.write("WARNING: this run's checkpoints were selected on the TEST split (paper reproduction)")
    threshold_scores = None
    if cfg.eval.tune_threshold:
        if selection == "test":
            tqdm.write("WARNING: choosing the threshold on the TEST split (paper reproduction), recorded")
        if not bundle.split.get(selection):
            raise DualsegError(f"the run's split has no '{selection}' images to choose a threshold on")
        chosen = make_dataset(cfg, bundle, selection, train=False)
        cfg.eval.threshold, threshold_scores = tune_threshold(model, chosen, cfg.eval, device, spec,
                                                              progress=progress)
    summary = evaluate_dataset(model, dataset, cfg.eval, device, spec, progress, extended=True, sr=sr_spec(cfg))
    summary.update(
        split=split,
        checkpoint=loaded.source,
        epoch=loaded.info["epoch"],
        model=cfg.model.name,
        dataset=bundle.description.name,
        selected_on=cfg.train.select_on,
        threshold_selected_on=selection if cfg.eval.tune_threshold else None,
        threshold_scores=None if threshold_scores is None else {str(k): v for k, v in threshold_scores.items()},
        paper_reproduction=cfg.train.select_on == "test" or (cfg.eval.tune_threshold and selection == "test"),
    )
    return summary


def per_image_csv(summary: dict) -> str:
    """``per_image.csv``: one row per image, one column per metric and class (then PSNR/SSIM)."""
    classes = summary["classes"]
    metrics = list(summary["mean"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    quality = [m for m in ("psnr", "ssim") if any(m in row for row in summary["per_image"])]
    writer.writerow(["name"] + [f"{m}_{c}" for m in metrics for c in classes] + quality)
    for row in summary["per_image"]:
        writer.writerow([row["name"]] + [row["per_class"][c].get(m) for m in metrics for c in classes]
                        + [row.get(m) for m in quality])
    return buf.getvalue()
