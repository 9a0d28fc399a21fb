"""Evaluate a model on a dataset: per-case confusion counts and extras (PR-AUC, HD95/ASD, PSNR/SSIM) aggregated
into the summary of :func:`dualseg.metrics.summarize` under the chosen metric convention."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from dualseg.config import EvalConfig
from dualseg.data.dataset import SegmentationDataset
from dualseg.data.sr_pairs import SRSpec
from dualseg.engine.cases import predict_cases
from dualseg.errors import DualsegError
from dualseg.inference.spec import DEFAULT_SPEC, InputSpec
from dualseg.metrics import confusion_counts, logits_to_labels, num_labels_for, summarize
from dualseg.metrics.confusion import logits_to_probs
from dualseg.metrics.conventions import Convention, get_convention, group_volumes
from dualseg.metrics.ranking import average_precision, average_precision_per_class
from dualseg.metrics.surface import EMPTY_RULE, surface_metrics


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    dataset: SegmentationDataset,
    eval_cfg: EvalConfig,
    device: torch.device,
    spec: InputSpec = DEFAULT_SPEC,
    progress: bool = False,
    *,
    extended: bool = False,
    threshold: float | None = None,
    sr: SRSpec | None = None,
) -> dict:
    """The summary dict of :func:`dualseg.metrics.summarize` over every image of ``dataset``.

    Each image is predicted as ``spec`` says (whole or by sliding window, under its precision) at its original
    size; metrics count only FOV pixels when the dataset has FOV masks and ``eval_cfg.use_fov`` is set.
    ``eval_cfg.convention`` chooses the reduction (docs/metrics.md). ``extended`` adds what 'dualseg evaluate'
    reports beyond the confusion metrics, each when its ``eval_cfg`` switch is on: PR-AUC, HD95/ASD and, for
    models with an ``"sr"`` output, PSNR/SSIM against the HR reference (the original image, or the teacher's
    target of ``sr``). ``threshold`` overrides ``eval_cfg.threshold`` (binary tasks: foreground where its
    probability exceeds it).
    """
    description = dataset.description
    conv = get_convention(eval_cfg.convention)
    threshold = eval_cfg.threshold if threshold is None else threshold
    num_labels = num_labels_for(model.num_classes)
    check_threshold(threshold, num_labels)
    class_names = list(description.class_names)
    if len(class_names) < num_labels:
        class_names += [f"class_{c}" for c in range(len(class_names), num_labels)]
    fg = description.foreground
    surface = extended and eval_cfg.surface_metrics
    keep_probs = extended and eval_cfg.pr_auc
    volumes = volume_groups(dataset, eval_cfg, conv)
    spacing = list(eval_cfg.spacing) if eval_cfg.spacing else None
    counts, names, cases = [], [], []
    per_image_extra: dict[str, list] = {}
    quality: list[dict[str, float]] = []
    for case in predict_cases(model, dataset, eval_cfg, conv, device, spec, progress,
                              keep_sr=extended and eval_cfg.sr_metrics, sr=sr):
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
    volume_ids, per_volume = volume_ids_of(volumes, len(cases)), None
    if volumes is not None:
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


def check_threshold(threshold: float | None, num_labels: int) -> None:
    """A probability threshold is refused for multi-class tasks (their labels are the argmax)."""
    if threshold is not None and num_labels != 2:
        raise DualsegError(f"a probability threshold needs a binary task, but the model predicts {num_labels} classes; "
                           "unset eval.threshold (multi-class labels are the argmax)")


def _labels(logits: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Label map of ``(N, C, H, W)`` logits: argmax, or foreground where its probability exceeds ``threshold``."""
    if threshold is None:
        return logits_to_labels(logits)
    return (logits_to_probs(logits)[:, 1] > threshold).long()


def volume_groups(dataset: SegmentationDataset, eval_cfg: EvalConfig, conv: Convention) -> dict | None:
    """``{volume: [image indices]}`` for conventions that reduce per volume, else None."""
    if conv.unit != "volume":
        return None
    pattern = eval_cfg.volume_pattern or dataset.description.volume_pattern
    if not pattern:
        raise DualsegError(f"convention '{conv.name}' groups slices into volumes, but dataset "
                           f"'{dataset.description.name}' has no volume pattern; set eval.volume_pattern to a regex "
                           "whose first group names the volume of a stem")
    return group_volumes([s.stem for s in dataset.samples], pattern)


def volume_ids_of(volumes: dict | None, count: int) -> list[str] | None:
    """The volume of each of ``count`` images (None without volume grouping)."""
    if volumes is None:
        return None
    ids = [""] * count
    for volume, indices in volumes.items():
        for i in indices:
            ids[i] = volume
    return ids


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
