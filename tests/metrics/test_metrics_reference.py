"""Counts and metrics against MONAI and scikit-learn on random binary and multi-class cases with empty masks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import (
    DiceMetric,
    compute_confusion_matrix_metric,
    compute_dice,
    compute_iou,
    get_confusion_matrix,
)
from sklearn.metrics import jaccard_score, multilabel_confusion_matrix, precision_recall_fscore_support

from dualseg.metrics import batch_confusion_counts, metrics_from_counts

N_CASES = 80  # per number of labels; 3 label counts -> 240 cases against MONAI
N_SKLEARN = 70  # 210 cases against scikit-learn (slower: a few ms per call)


def random_cases(num_labels: int, n: int, seed: int, size: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target) of shape (n, size, size) with every kind of emptiness represented."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_labels, (n, size, size), generator=g)
    noise = torch.randint(0, num_labels, (n, size, size), generator=g)
    pred = torch.where(torch.rand(n, size, size, generator=g) < 0.6, target, noise)
    for i in range(n):
        mode = i % 7
        if mode == 1:  # reference empty (all background)
            target[i] = 0
        elif mode == 2:  # prediction empty
            pred[i] = 0
        elif mode == 3:  # both empty
            target[i] = 0
            pred[i] = 0
        elif mode == 4:  # class 1 absent from both
            target[i][target[i] == 1] = 0
            pred[i][pred[i] == 1] = 0
        elif mode == 5:  # tiny structure
            target[i] = 0
            target[i, 3, 4] = num_labels - 1
            pred[i][torch.rand(size, size, generator=g) < 0.9] = 0
    return pred, target


def onehot(x: torch.Tensor, num_labels: int) -> torch.Tensor:
    return F.one_hot(x, num_labels).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module", params=[2, 3, 4], ids=lambda n: f"L{n}")
def case(request: pytest.FixtureRequest) -> dict:
    num_labels = request.param
    pred, target = random_cases(num_labels, N_CASES, seed=num_labels)
    counts = batch_confusion_counts(pred, target, num_labels)
    return {
        "L": num_labels,
        "pred": pred,
        "target": target,
        "y_pred": onehot(pred, num_labels),
        "y": onehot(target, num_labels),
        "counts": counts,
        "m": metrics_from_counts(counts),
    }


def test_cases_cover_empties(case: dict) -> None:
    c = case["counts"].numpy()
    ref_empty = c[..., 0] + c[..., 2] == 0
    pred_empty = c[..., 0] + c[..., 1] == 0
    assert (ref_empty & pred_empty).any() and (ref_empty & ~pred_empty).any() and (~ref_empty & pred_empty).any()


def test_counts_match_monai_confusion_matrix(case: dict) -> None:
    cm = get_confusion_matrix(case["y_pred"], case["y"], include_background=True)  # [tp, fp, tn, fn]
    ours = case["counts"]
    np.testing.assert_array_equal(cm[..., [0, 1, 3, 2]].long().numpy(), ours.numpy())


@pytest.mark.parametrize("metric", ["sensitivity", "specificity", "precision", "accuracy"])
def test_confusion_metrics_match_monai(case: dict, metric: str) -> None:
    cm = get_confusion_matrix(case["y_pred"], case["y"], include_background=True)
    ref = compute_confusion_matrix_metric(metric, cm).numpy()
    np.testing.assert_allclose(case["m"][metric], ref, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("include_background", [True, False])
def test_dice_and_iou_match_monai(case: dict, include_background: bool) -> None:
    skip = 0 if include_background else 1
    ours = {k: case["m"][k][:, skip:] for k in ("dice", "iou")}
    c = case["counts"].numpy()[:, skip:]
    ref_nonempty = c[..., 0] + c[..., 2] > 0
    both_empty = c[..., :3].sum(-1) == 0
    np.testing.assert_array_equal(np.isnan(ours["dice"]), both_empty)
    for name, fn in (("dice", compute_dice), ("iou", compute_iou)):
        kw = {"include_background": include_background}
        # ignore_empty=True: MONAI is NaN whenever the reference is empty; identical where it is not
        ref_ignore = fn(case["y_pred"], case["y"], ignore_empty=True, **kw).numpy()
        np.testing.assert_array_equal(np.isnan(ref_ignore), ~ref_nonempty)
        np.testing.assert_allclose(ours[name][ref_nonempty], ref_ignore[ref_nonempty], rtol=1e-6)
        # ignore_empty=False: MONAI gives 1 where both are empty (ours: NaN) and 0 for a false detection (ours: 0)
        ref_keep = fn(case["y_pred"], case["y"], ignore_empty=False, **kw).numpy()
        np.testing.assert_allclose(np.where(both_empty, 1.0, ours[name]), ref_keep, rtol=1e-6)


def test_dice_metric_aggregation_matches_monai(case: dict) -> None:
    dice = case["m"]["dice"]
    c = case["counts"].numpy()
    ref_empty = c[..., 0] + c[..., 2] == 0
    for ignore_empty, ours in ((True, np.where(ref_empty, np.nan, dice)), (False, np.where(np.isnan(dice), 1.0, dice))):
        metric = DiceMetric(include_background=True, reduction="mean_batch", ignore_empty=ignore_empty)
        for lo in range(0, N_CASES, 16):  # several batches, as in an evaluation loop
            metric(case["y_pred"][lo : lo + 16], case["y"][lo : lo + 16])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmean(ours, axis=0)
        np.testing.assert_allclose(metric.aggregate().numpy(), expected, rtol=1e-6, equal_nan=True)


def test_against_sklearn_with_valid_mask(case: dict) -> None:
    num_labels = case["L"]
    labels = list(range(num_labels))
    g = torch.Generator().manual_seed(100 + num_labels)
    valid = torch.rand(case["target"].shape, generator=g) > 0.25
    counts = batch_confusion_counts(case["pred"], case["target"], num_labels, valid).numpy()
    m = metrics_from_counts(counts)
    for i in range(N_SKLEARN):
        yt = case["target"][i][valid[i]].numpy()
        yp = case["pred"][i][valid[i]].numpy()
        mcm = multilabel_confusion_matrix(yt, yp, labels=labels)  # (L, 2, 2) = [[tn, fp], [fn, tp]]
        np.testing.assert_array_equal(counts[i], mcm.reshape(num_labels, 4)[:, [3, 1, 2, 0]])
        kw = {"labels": labels, "average": None}
        # precision_score, recall_score and f1_score in one call
        precision, recall, f1, _ = precision_recall_fscore_support(yt, yp, zero_division=np.nan, **kw)
        np.testing.assert_allclose(m["dice"][i], f1, equal_nan=True)
        np.testing.assert_allclose(m["precision"][i], precision, equal_nan=True)
        np.testing.assert_allclose(m["sensitivity"][i], recall, equal_nan=True)
        # jaccard_score has no NaN option: with zero_division=0 it gives 0 where ours is NaN (TP + FP + FN == 0)
        j0 = jaccard_score(yt, yp, zero_division=0, **kw)
        np.testing.assert_array_equal(np.isnan(m["iou"][i]), counts[i, :, :3].sum(-1) == 0)
        np.testing.assert_allclose(np.where(np.isnan(m["iou"][i]), 0.0, m["iou"][i]), j0)
