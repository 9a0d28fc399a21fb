"""Error overlays of a run's best and worst cases: prediction against ground truth, as in the papers' figures.

True positives are green, false positives red, false negatives blue, and (with several classes shown) a pixel of
one shown class predicted as another is yellow. Pixels outside the field of view are darkened. Predictions are
made again with the run's checkpoint, exactly as ``dualseg evaluate`` makes them (same resize, input scale,
sliding window and precision), so the drawn errors are the counted ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dualseg.errors import DualsegError
from dualseg.inference.loading import LoadedModel, load_inference_model
from dualseg.inference.writers import display_image
from dualseg.report.runs import MEAN, RunResult
from dualseg.report.tables import higher_is_better

TP_COLOUR = (0, 200, 0)
FP_COLOUR = (230, 20, 20)
FN_COLOUR = (30, 100, 255)
WRONG_CLASS_COLOUR = (255, 215, 0)
LEGEND = "green: true positive, red: false positive, blue: false negative, yellow: wrong foreground class"
PANEL_GAP = 4  # white pixels between the image and its overlay


@dataclass
class CasePrediction:
    name: str
    image: np.ndarray  # (H, W, C) as stored on disk
    labels: np.ndarray  # (H, W) predicted class indices
    target: np.ndarray  # (H, W) reference class indices
    valid: np.ndarray | None  # (H, W) field of view, or None


def shown_classes(foreground: Sequence[int], background: int | None) -> list[int]:
    """The classes drawn: the foreground classes; when no class is background (ISBI 2012: membrane and cell
    interior), only the first (the membrane), the structure those papers segment and draw."""
    return list(foreground) if background is not None else list(foreground)[:1]


def error_overlay(
    image: np.ndarray, pred: np.ndarray, target: np.ndarray, shown: Sequence[int], valid: np.ndarray | None = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """``image`` (H, W, C) as 8-bit RGB with TP/FP/FN (and wrong-class) pixels of the ``shown`` classes coloured."""
    if pred.shape != target.shape or pred.shape != image.shape[:2]:
        raise DualsegError(f"overlay sizes differ: image {image.shape[:2]}, prediction {pred.shape}, "
                           f"reference {target.shape}")
    rgb = display_image(image).astype(np.float32)
    in_pred, in_target = np.isin(pred, shown), np.isin(target, shown)
    layers = (
        (in_pred & in_target & (pred == target), TP_COLOUR),
        (in_pred & ~in_target, FP_COLOUR),
        (~in_pred & in_target, FN_COLOUR),
        (in_pred & in_target & (pred != target), WRONG_CLASS_COLOUR),
    )
    inside = np.ones(pred.shape, bool) if valid is None else valid.astype(bool)
    for mask, colour in layers:
        mask = mask & inside
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(colour, np.float32)
    rgb[~inside] *= 0.4
    return rgb.round().astype(np.uint8)


def side_by_side(image: np.ndarray, overlay: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """The display image and its overlay next to each other, each panel scaled down to ``max_side`` if larger."""
    from PIL import Image

    panels = [display_image(image), overlay]
    h, w = overlay.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        panels = [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BOX)) for p in panels]
    gap = np.full((panels[0].shape[0], PANEL_GAP, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def select_cases(run: RunResult, metric: str, k: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``k`` best and ``k`` worst images by their foreground-mean ``metric`` (undefined values skipped).

    With fewer than ``2k`` images the two lists split the images between them without repeating one.
    """
    values = run.per_case.get(MEAN, {}).get(metric)
    if values is None:
        raise DualsegError(f"{run.name} has no per-image '{metric}'; choose a metric its summary has "
                           f"({', '.join(run.per_case.get(MEAN, {}))})")
    ranked = sorted(((v, n) for n, v in values.items() if not math.isnan(v)), reverse=higher_is_better(metric))
    n_best = min(k, (len(ranked) + 1) // 2)
    best = ranked[:n_best]
    worst = ranked[n_best:][::-1][: min(k, len(ranked) - n_best)]
    return [(n, v) for v, n in best], [(n, v) for v, n in worst]


@torch.no_grad()
def predict_cases(
    loaded: LoadedModel, run_dir: str | Path, split: str, names: Sequence[str], data_root: str | None = None
) -> list[CasePrediction]:
    """Predict the named images of a run's split with its loaded checkpoint and its input spec, as
    :func:`~dualseg.engine.run_evaluation.evaluate_run` does."""
    from dualseg.data.build import make_dataset, prepare_data
    from dualseg.data.io import read_image
    from dualseg.inference.predictor import predict_logits
    from dualseg.metrics import logits_to_labels
    from dualseg.runtime import autocast, resolve_precision

    run_dir = Path(run_dir)
    dev = next(loaded.model.parameters()).device
    cfg = loaded.config
    if data_root:
        cfg.data.root = data_root
    bundle = prepare_data(cfg, run_dir / "split.json")
    dataset = make_dataset(cfg, bundle, split, train=False)
    index = {s.stem: i for i, s in enumerate(dataset.samples)}
    missing = [n for n in names if n not in index]
    if missing:
        raise DualsegError(f"'{missing[0]}' is not in the {split} split of {run_dir} (data root {cfg.data.root}); "
                           "pass --data if the dataset moved")
    amp_dtype = resolve_precision(loaded.spec.precision, dev)
    cases = []
    for name in names:
        item = dataset[index[name]]
        with autocast(dev, amp_dtype):
            logits = predict_logits(loaded.model, item["image"][None].to(dev), loaded.spec)
        labels = logits_to_labels(logits.float())[0].cpu().numpy()
        valid = item["fov"].numpy() if cfg.eval.use_fov and "fov" in item else None
        image = read_image(dataset.samples[index[name]].image)
        cases.append(CasePrediction(name, image, labels, item["mask"].numpy(), valid))
    return cases


def write_case_overlays(
    run: RunResult, out_dir: str | Path, metric: str = "dice", k: int = 2, which: str = "best",
    data_root: str | None = None, max_side: int | None = 384, device: str = "auto",
) -> list[dict]:
    """Write ``OUT_DIR/{best,worst}_<rank>_<image>.png`` (image | error overlay) for a run's best and worst cases.

    Returns one record per image: ``{"kind", "name", "value", "metric", "path"}``.
    """
    from dualseg.data.io import write_png_atomic
    from dualseg.runtime import resolve_device

    best, worst = select_cases(run, metric, k)
    chosen = [("best", i + 1, n, v) for i, (n, v) in enumerate(best)]
    chosen += [("worst", i + 1, n, v) for i, (n, v) in enumerate(worst)]
    loaded = load_inference_model(run.path, which, resolve_device(device))
    description = loaded.description
    shown = shown_classes(description.foreground, description.background)
    predictions = predict_cases(loaded, run.path, run.split, [c[2] for c in chosen], data_root)
    cases = {c.name: c for c in predictions}
    out_dir = Path(out_dir)
    records = []
    for kind, rank, name, value in chosen:
        case = cases[name]
        panel = side_by_side(case.image, error_overlay(case.image, case.labels, case.target, shown, case.valid),
                             max_side)
        path = out_dir / f"{kind}_{rank}_{name}.png"
        write_png_atomic(panel, path)
        records.append({"kind": kind, "name": name, "value": value, "metric": metric, "path": str(path),
                        "classes": [description.class_names[c] for c in shown]})
    return records
