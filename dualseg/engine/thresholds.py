"""Choose the probability threshold of a binary task: the candidate with the best Dice on the selection split."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dualseg.config import EvalConfig
from dualseg.data.dataset import SegmentationDataset
from dualseg.engine.cases import predict_cases
from dualseg.engine.evaluator import check_threshold, volume_groups, volume_ids_of
from dualseg.errors import DualsegError
from dualseg.inference.spec import DEFAULT_SPEC, InputSpec
from dualseg.metrics import num_labels_for, summarize
from dualseg.metrics.confusion import logits_to_probs
from dualseg.metrics.conventions import get_convention

THRESHOLD_CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


@torch.no_grad()
def tune_threshold(
    model: nn.Module,
    dataset: SegmentationDataset,
    eval_cfg: EvalConfig,
    device: torch.device,
    spec: InputSpec = DEFAULT_SPEC,
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
    progress: bool = False,
) -> tuple[float, dict[float, float | None]]:
    """The candidate probability threshold with the best foreground-mean Dice on ``dataset`` (binary tasks).

    Dice is reduced by ``eval_cfg.convention``; ties go to the first candidate. Returns the threshold and
    ``{candidate: Dice}``. Call it on the validation split: choosing on the test split reports an optimistic score.
    """
    conv = get_convention(eval_cfg.convention)
    num_labels = num_labels_for(model.num_classes)
    check_threshold(0.5, num_labels)
    volumes = volume_groups(dataset, eval_cfg, conv)
    thresholds = torch.tensor([float(t) for t in candidates], dtype=torch.float32)
    per_threshold: list[list[torch.Tensor]] = [[] for _ in candidates]
    names = []
    for case in predict_cases(model, dataset, eval_cfg, conv, device, spec, progress, keep_sr=False, sr=None):
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
    volume_ids = volume_ids_of(volumes, len(names))
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
