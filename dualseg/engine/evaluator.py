"""Evaluate a model on a dataset split: predict at full label resolution, count, summarise."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from dualseg.data.dataset import SegmentationDataset
from dualseg.engine.checkpoint import atomic_write_text
from dualseg.engine.config import EvalConfig
from dualseg.engine.precision import autocast, resolve_precision
from dualseg.errors import DualsegError
from dualseg.inference.predictor import predict_logits
from dualseg.metrics import confusion_counts, logits_to_labels, num_labels_for, summarize


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    dataset: SegmentationDataset,
    eval_cfg: EvalConfig,
    device: torch.device,
    resize: Sequence[int] | None = None,
    input_scale: float = 1.0,
    progress: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> dict:
    """The summary dict of :func:`dualseg.metrics.summarize` over every image of ``dataset``.

    Each image is predicted whole (or by sliding window) at its original size; metrics count only FOV pixels when
    the dataset has FOV masks and ``eval_cfg.use_fov`` is set.
    """
    description = dataset.description
    was_training = model.training
    model.eval()
    num_labels = num_labels_for(model.num_classes)
    counts, names = [], []
    for i in tqdm(range(len(dataset)), desc="evaluate", disable=not progress, leave=False):
        item = dataset[i]
        with autocast(device, amp_dtype):
            logits = predict_logits(model, item["image"][None].to(device), roi_size=eval_cfg.roi_size,
                                    overlap=eval_cfg.overlap, resize=resize, input_scale=input_scale)
        logits = logits.float()
        pred = logits_to_labels(logits)[0].cpu()
        valid = item.get("fov") if eval_cfg.use_fov else None
        counts.append(confusion_counts(pred, item["mask"], num_labels, valid))
        names.append(item["name"])
    model.train(was_training)
    class_names = list(description.class_names)
    if len(class_names) < num_labels:
        class_names += [f"class_{c}" for c in range(len(class_names), num_labels)]
    summary = summarize(counts, names, class_names, description.foreground)
    summary["fov"] = bool(eval_cfg.use_fov and any(s.fov is not None for s in dataset.samples))
    return summary


def evaluate_run(
    run_dir: str | Path, split: str = "val", which: str = "best", data_root: str | None = None, progress: bool = True
) -> tuple[dict, Path]:
    """Evaluate a run's checkpoint on one split of its own split file; write ``RUN_DIR/eval/<split>/``."""
    from dualseg.data.build import input_scale, make_dataset, prepare_data
    from dualseg.engine.seed import resolve_device
    from dualseg.inference.loading import load_trained

    run_dir = Path(run_dir)
    trained = load_trained(run_dir, which)
    cfg = trained.config
    if data_root:
        cfg.data.root = data_root
    split_file = run_dir / "split.json" if run_dir.is_dir() else None
    bundle = prepare_data(cfg, split_file)
    if not bundle.split.get(split):
        raise DualsegError(f"the run's split has no '{split}' images; choose one of "
                           f"{', '.join(k for k, v in bundle.split.items() if v)}")
    device = resolve_device("auto")
    model = trained.model.to(device)
    dataset = make_dataset(cfg, bundle, split, train=False)
    amp_dtype = resolve_precision(cfg.train.precision, device)  # as during training, so the numbers agree
    summary = evaluate_dataset(model, dataset, cfg.eval, device, resize=cfg.data.resize,
                               input_scale=input_scale(cfg), progress=progress,
                               amp_dtype=amp_dtype)
    summary.update(
        split=split,
        checkpoint=str(trained.checkpoint),
        epoch=trained.epoch,
        model=cfg.model.name,
        dataset=bundle.description.name,
        selected_on=cfg.train.select_on,
    )
    out = (run_dir if run_dir.is_dir() else trained.checkpoint.parent.parent) / "eval" / split
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "per_image.csv", _per_image_csv(summary))
    return summary, out


def _per_image_csv(summary: dict) -> str:
    classes = summary["classes"]
    metrics = list(summary["mean"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name"] + [f"{m}_{c}" for m in metrics for c in classes])
    for row in summary["per_image"]:
        writer.writerow([row["name"]] + [row["per_class"][c][m] for m in metrics for c in classes])
    return buf.getvalue()


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
        return "".join(f"{(values[m] if values[m] is not None else float('nan')):>{width}.4f}" for m in metrics)

    lines = [f"{'class':<16}" + "".join(f"{m:>{width}}" for m in metrics)]
    lines += [f"{name:<16}" + "".join(cell(v[m]) for m in metrics) for name, v in summary["per_class"].items()]
    lines.append(f"{'mean (fg)':<16}" + plain(summary["mean"]))
    lines.append(f"{'pooled (fg)':<16}" + plain(summary["dataset_level"]["mean"]))
    return "\n".join(lines)
