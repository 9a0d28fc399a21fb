"""Evaluate a model on a dataset split: predict at full label resolution, count, summarise."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dualseg.config import EvalConfig
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.sr_pairs import SRSpec
from dualseg.errors import DualsegError
from dualseg.inference.predictor import predict_logits
from dualseg.metrics import confusion_counts, logits_to_labels, num_labels_for, summarize
from dualseg.metrics.confusion import logits_to_probs
from dualseg.metrics.conventions import Convention, get_convention, group_volumes
from dualseg.metrics.image_quality import image_quality, unit_affine
from dualseg.metrics.ranking import average_precision, average_precision_per_class
from dualseg.metrics.surface import EMPTY_RULE, surface_metrics
from dualseg.progress import progress_bar
from dualseg.runtime import autocast, resolve_precision
from dualseg.safety.atomic import atomic_write_text
from dualseg.safety.outputs import claim, writing_into

THRESHOLD_CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


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
    *,
    input_mode: str = "area",
    extended: bool = False,
    threshold: float | None = None,
    sr: SRSpec | None = None,
) -> dict:
    """The summary dict of :func:`dualseg.metrics.summarize` over every image of ``dataset``.

    Each image is predicted whole (or by sliding window) at its original size; metrics count only FOV pixels when
    the dataset has FOV masks and ``eval_cfg.use_fov`` is set. ``eval_cfg.convention`` chooses the reduction
    (docs/metrics.md). ``extended`` adds what 'dualseg evaluate' reports beyond the confusion metrics, each when
    its ``eval_cfg`` switch is on: PR-AUC, HD95/ASD and, for models with an ``"sr"`` output, PSNR/SSIM against
    the HR reference (the original image, or the teacher's target of ``sr``). ``threshold`` overrides
    ``eval_cfg.threshold`` (binary tasks: foreground where its probability exceeds it).
    """
    description = dataset.description
    conv = get_convention(eval_cfg.convention)
    threshold = eval_cfg.threshold if threshold is None else threshold
    num_labels = num_labels_for(model.num_classes)
    _check_threshold(threshold, num_labels)
    class_names = list(description.class_names)
    if len(class_names) < num_labels:
        class_names += [f"class_{c}" for c in range(len(class_names), num_labels)]
    fg = description.foreground
    surface = extended and eval_cfg.surface_metrics
    keep_probs = extended and eval_cfg.pr_auc
    volumes = _volume_groups(dataset, eval_cfg, conv)
    spacing = list(eval_cfg.spacing) if eval_cfg.spacing else None
    counts, names, cases = [], [], []
    per_image_extra: dict[str, list] = {}
    quality: list[dict[str, float]] = []
    for case in _predict_cases(model, dataset, eval_cfg, conv, device, resize, (input_scale, input_mode), amp_dtype,
                               progress, keep_sr=extended and eval_cfg.sr_metrics, sr=sr):
        pred = _labels(case["logits"], threshold)[0].cpu()
        mask, valid = case["mask"], case["valid"]
        counts.append(confusion_counts(pred, mask, num_labels, valid))
        names.append(case["name"])
        if keep_probs:
            probs = logits_to_probs(case["logits"])[0].cpu()
            per_image_extra.setdefault("pr_auc", []).append(average_precision_per_class(probs, mask, valid, fg))
            case["scores"] = (probs[:, valid] if valid is not None else probs.flatten(1)).float()
            case["labels"] = mask[valid] if valid is not None else mask.flatten()
        if surface and conv.unit != "volume":
            sd = surface_metrics(pred, mask, num_labels, spacing, valid, classes=fg)
            for k, v in sd.items():
                per_image_extra.setdefault(k, []).append(v)
        if "quality" in case:
            quality.append(case["quality"])
        case.pop("logits")
        case["pred"] = pred.to(torch.uint8)
        cases.append(case)
    extra = {k: np.stack(v) for k, v in per_image_extra.items()}
    pooled = {"pr_auc": _pooled_ap(cases, num_labels, fg)} if keep_probs else None
    volume_ids, per_volume = None, None
    if volumes is not None:
        volume_ids = [None] * len(cases)
        for v, idx in volumes.items():
            for i in idx:
                volume_ids[i] = v
        per_volume = _per_volume_extras(cases, volumes, num_labels, fg, eval_cfg, surface, keep_probs)
    summary = summarize(counts, names, class_names, fg, extra_per_image=extra, convention=conv.name,
                        volume_ids=volume_ids, extra_per_volume=per_volume, extra_dataset_level=pooled)
    summary["fov"] = bool(eval_cfg.use_fov and any(s.fov is not None for s in dataset.samples))
    summary["threshold"] = threshold
    if surface:
        summary["surface"] = {
            "units": "spacing units" if spacing else "pixels",
            "spacing": ([eval_cfg.slice_spacing] if conv.unit == "volume" else []) + (spacing or [1.0, 1.0]),
            "empty_rule": "TransUNet: prediction empty 0, reference empty 0" if conv.empty_rule == "transunet"
            else EMPTY_RULE,
        }
    if quality:
        summary["image_quality"] = {m: _mean_std([q[m] for q in quality]) for m in quality[0] if m != "name"}
        summary["image_quality"]["data_range"] = 1.0
        summary["image_quality"]["n"] = len(quality)
        by_name = {q["name"]: q for q in quality}
        for row in summary["per_image"]:
            if row["name"] in by_name:
                row.update({m: _json(by_name[row["name"]][m]) for m in ("psnr", "ssim")})
    return summary


def _check_threshold(threshold: float | None, num_labels: int) -> None:
    if threshold is not None and num_labels != 2:
        raise DualsegError(f"a probability threshold needs a binary task, but the model predicts {num_labels} classes; "
                           "unset eval.threshold (multi-class labels are the argmax)")


def _labels(logits: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Label map of ``(N, C, H, W)`` logits: argmax, or foreground where its probability exceeds ``threshold``."""
    if threshold is None:
        return logits_to_labels(logits)
    return (logits_to_probs(logits)[:, 1] > threshold).long()


def _volume_groups(dataset: SegmentationDataset, eval_cfg: EvalConfig, conv: Convention) -> dict | None:
    if conv.unit != "volume":
        return None
    pattern = eval_cfg.volume_pattern or dataset.description.volume_pattern
    if not pattern:
        raise DualsegError(f"convention '{conv.name}' groups slices into volumes, but dataset "
                           f"'{dataset.description.name}' has no volume pattern; set eval.volume_pattern to a regex "
                           "whose first group names the volume of a stem")
    return group_volumes([s.stem for s in dataset.samples], pattern)


class _KeepOutputs(nn.Module):
    """Passes the model through, keeping its last output dict and input shape (for the "sr" output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.size_divisor = getattr(model, "size_divisor", 1)
        self.outputs: dict = {}
        self.input_shape: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> dict:
        self.outputs = self.model(x)
        self.input_shape = tuple(x.shape)
        return self.outputs


def _predict_cases(model, dataset, eval_cfg, conv, device, resize, scaling, amp_dtype, progress, keep_sr, sr):
    """Yield ``{name, logits (1, C, H, W) float32 at full size, mask, valid[, quality]}`` per image, in order.
    ``scaling``: ``(input_scale, input_mode)`` of the predictor."""
    input_scale, input_mode = scaling
    resize_mode = eval_cfg.resize_back
    if resize_mode == "auto":
        resize_mode = "nearest" if conv.unit == "volume" else "bilinear"
    # the "sr" output can be matched to its reference only for whole-image passes without resizing
    keeper = _KeepOutputs(model) if keep_sr and resize is None and eval_cfg.roi_size is None else None
    was_training = model.training
    model.eval()
    try:
        for i in progress_bar(range(len(dataset)), desc="evaluate", enabled=progress):
            item = dataset[i]
            with autocast(device, amp_dtype):
                logits = predict_logits(keeper or model, item["image"][None].to(device), roi_size=eval_cfg.roi_size,
                                        overlap=eval_cfg.overlap, resize=resize, input_scale=input_scale,
                                        input_mode=input_mode, resize_mode=resize_mode)
            case = {"name": item["name"], "logits": logits.float(), "mask": item["mask"],
                    "valid": item.get("fov") if eval_cfg.use_fov else None}
            if keeper is not None and "sr" in keeper.outputs:
                pair = _sr_pair(dataset, i, item, keeper, input_scale, sr)
                if pair is not None:
                    case["quality"] = {"name": item["name"], **image_quality(*pair)}
            yield case
    finally:
        model.train(was_training)


def _sr_pair(dataset, index, item, keeper, input_scale, sr) -> tuple[torch.Tensor, torch.Tensor] | None:
    """SR output and its HR reference in [0, 1] (see dualseg.metrics.image_quality), or None if they do not fit."""
    from dualseg.data.io import read_image, to_channels, to_float
    from dualseg.data.sr_pairs import load_target

    sample = dataset.samples[index]
    unit = to_float(to_channels(read_image(sample.image), dataset.description.channels, sample.image), sample.image)
    a, b = unit_affine(item["image"].numpy().transpose(1, 2, 0), unit)
    if "hr_image" in item:  # a dataset that brings its own HR reference
        reference = item["hr_image"]
    elif sr is not None and sr.mode == "teacher":
        reference = torch.from_numpy(load_target(sr, sample.stem, unit.shape).transpose(2, 0, 1).copy())
    else:
        reference = item["image"]
    out = keeper.outputs["sr"][0].float().cpu()
    h, w = (int(d * input_scale) for d in item["image"].shape[-2:])  # the model input before padding
    ratio = out.shape[-1] / keeper.input_shape[-1]
    out = out[..., : round(h * ratio), : round(w * ratio)]
    if any(abs(o - r) > max(1, ratio) for o, r in zip(out.shape[-2:], reference.shape[-2:])):
        return None  # the SR output is not at the reference's scale
    hh, ww = min(out.shape[-2], reference.shape[-2]), min(out.shape[-1], reference.shape[-1])
    prediction = (out[..., :hh, :ww] * a + b).clamp(0, 1)
    return prediction, (reference[..., :hh, :ww].float() * a + b).clamp(0, 1)


def _pooled_ap(cases: list[dict], num_labels: int, classes: Sequence[int]) -> np.ndarray:
    """One-vs-rest AP over the pixels of all ``cases`` (NaN for classes not in ``classes``)."""
    out = np.full(num_labels, np.nan)
    scores = torch.cat([c["scores"] for c in cases], dim=1)
    labels = torch.cat([c["labels"] for c in cases])
    for c in classes:
        out[c] = average_precision(scores[c], labels == c)
    return out


def _per_volume_extras(cases, volumes, num_labels, fg, eval_cfg, surface, keep_probs) -> dict[str, np.ndarray]:
    """HD95/ASD on each volume stacked from its slices (D, H, W), and PR-AUC over each volume's pixels."""
    out: dict[str, list] = {}
    spacing = [eval_cfg.slice_spacing, *(eval_cfg.spacing or [1.0, 1.0])]
    for name, idx in volumes.items():
        members = [cases[i] for i in idx]
        if keep_probs:
            out.setdefault("pr_auc", []).append(_pooled_ap(members, num_labels, fg))
        if not surface:
            continue
        sizes = {tuple(c["mask"].shape) for c in members}
        if len(sizes) > 1:
            raise DualsegError(f"volume '{name}' has slices of different sizes {sorted(sizes)}; a volume needs one "
                               "slice size (check eval.volume_pattern)")
        pred = torch.stack([c["pred"] for c in members])
        mask = torch.stack([c["mask"] for c in members])
        valid = None if members[0]["valid"] is None else torch.stack([c["valid"] for c in members])
        for k, v in surface_metrics(pred, mask, num_labels, spacing, valid, classes=fg).items():
            out.setdefault(k, []).append(v)
    return {k: np.stack(v) for k, v in out.items()}


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else None}


def _json(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


@torch.no_grad()
def tune_threshold(
    model: nn.Module,
    dataset: SegmentationDataset,
    eval_cfg: EvalConfig,
    device: torch.device,
    resize: Sequence[int] | None = None,
    input_scale: float = 1.0,
    amp_dtype: torch.dtype | None = None,
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
    progress: bool = False,
    input_mode: str = "area",
) -> tuple[float, dict[float, float | None]]:
    """The candidate probability threshold with the best foreground-mean Dice on ``dataset`` (binary tasks).

    Dice is reduced by ``eval_cfg.convention``; ties go to the first candidate. Returns the threshold and
    ``{candidate: Dice}``. Call it on the validation split: choosing on the test split reports an optimistic score.
    """
    conv = get_convention(eval_cfg.convention)
    num_labels = num_labels_for(model.num_classes)
    _check_threshold(0.5, num_labels)
    volumes = _volume_groups(dataset, eval_cfg, conv)
    thresholds = torch.tensor([float(t) for t in candidates], dtype=torch.float32)
    per_threshold: list[list[torch.Tensor]] = [[] for _ in candidates]
    names = []
    for case in _predict_cases(model, dataset, eval_cfg, conv, device, resize, (input_scale, input_mode), amp_dtype,
                               progress, keep_sr=False, sr=None):
        prob = logits_to_probs(case["logits"])[0, 1].cpu()
        positive = case["mask"] == 1
        if case["valid"] is not None:
            prob, positive = prob[case["valid"]], positive[case["valid"]]
        predicted = prob.flatten()[None] > thresholds[:, None]  # (K, pixels)
        positive = positive.flatten()[None]
        tp, fp = (predicted & positive).sum(1), (predicted & ~positive).sum(1)
        fn = (~predicted & positive).sum(1)
        tn = positive.shape[1] - tp - fp - fn
        counts = torch.stack([torch.stack([tn, fn, fp, tp], -1), torch.stack([tp, fp, fn, tn], -1)], 1)  # (K, 2, 4)
        for k in range(len(candidates)):
            per_threshold[k].append(counts[k])
        names.append(case["name"])
    volume_ids = None
    if volumes is not None:
        volume_ids = [""] * len(names)
        for v, idx in volumes.items():
            for i in idx:
                volume_ids[i] = v
    class_names = list(dataset.description.class_names)[:2]
    scores = {
        float(t): summarize(per_threshold[k], names, class_names, dataset.description.foreground, ("dice",),
                            convention=conv.name, volume_ids=volume_ids)["mean"]["dice"]
        for k, t in enumerate(candidates)
    }
    defined = {t: v for t, v in scores.items() if v is not None}
    if not defined:
        raise DualsegError("no threshold gives a defined Dice on the selection split (no foreground anywhere?)")
    return max(defined, key=lambda t: defined[t]), scores


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
    from dualseg.inference.loading import find_checkpoint

    run_dir = Path(run_dir)
    root = run_dir if run_dir.is_dir() else find_checkpoint(run_dir, which).parent.parent
    out = root / "eval" / split
    with writing_into(out, overwrite=overwrite, lock=root):
        for name in ("summary.json", "per_image.csv"):  # refused before the work, not after it
            claim(out / name)
        summary = _evaluate(run_dir, split, which, data_root, progress, convention, threshold, tune, select_on)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        atomic_write_text(out / "per_image.csv", _per_image_csv(summary))
    return summary, out


def _evaluate(run_dir: Path, split: str, which: str, data_root: str | None, progress: bool, convention: str | None,
              threshold: float | None, tune: bool | None, select_on: str | None) -> dict:
    from dualseg.data.build import input_mode, input_scale, make_dataset, prepare_data, sr_spec
    from dualseg.inference.loading import load_trained
    from dualseg.runtime import resolve_device

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
        cfg.eval.threshold, threshold_scores = tune_threshold(
            model, chosen, cfg.eval, device, resize=cfg.data.resize, input_scale=input_scale(cfg),
            amp_dtype=amp_dtype, progress=progress, input_mode=input_mode(cfg))
    summary = evaluate_dataset(model, dataset, cfg.eval, device, resize=cfg.data.resize,
                               input_scale=input_scale(cfg), progress=progress, input_mode=input_mode(cfg),
                               amp_dtype=amp_dtype, extended=True, sr=sr_spec(cfg))
    summary.update(
        split=split,
        checkpoint=str(trained.checkpoint),
        epoch=trained.epoch,
        model=cfg.model.name,
        dataset=bundle.description.name,
        selected_on=cfg.train.select_on,
        threshold_selected_on=selection if cfg.eval.tune_threshold else None,
        threshold_scores=None if threshold_scores is None else {str(k): v for k, v in threshold_scores.items()},
        paper_reproduction=cfg.train.select_on == "test" or (cfg.eval.tune_threshold and selection == "test"),
    )
    return summary


def _per_image_csv(summary: dict) -> str:
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
