"""Confusion counts and count-based metrics on hand-worked tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dualseg.errors import DualsegError
from dualseg.metrics import (
    METRIC_NAMES,
    batch_confusion_counts,
    confusion_counts,
    logits_to_labels,
    logits_to_probs,
    metrics_from_counts,
    num_labels_for,
)

NAN = math.nan

# Binary 3x3 example worked by hand.
#   target      pred
#   0 1 1       0 1 0
#   0 1 0       1 1 0
#   0 0 0       0 0 0
# class 1: TP = (0,1),(1,1) = 2; FP = (1,0) = 1; FN = (0,2) = 1; TN = 9 - 4 = 5
# class 0: TP = 5; FP = (0,2) = 1; FN = (1,0) = 1; TN = (0,1),(1,1) = 2
TARGET = torch.tensor([[0, 1, 1], [0, 1, 0], [0, 0, 0]])
PRED = torch.tensor([[0, 1, 0], [1, 1, 0], [0, 0, 0]])


def t(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows)


def assert_metrics(values: dict[str, np.ndarray], expected: dict[str, list[float]]) -> None:
    for name, exp in expected.items():
        np.testing.assert_allclose(values[name], np.array(exp, dtype=float), rtol=1e-12, equal_nan=True, err_msg=name)


def test_binary_counts_by_hand() -> None:
    counts = confusion_counts(PRED, TARGET, 2)
    assert counts.dtype == torch.int64
    assert counts.tolist() == [[5, 1, 1, 2], [2, 1, 1, 5]]  # [TP, FP, FN, TN]


def test_binary_metrics_by_hand() -> None:
    m = metrics_from_counts(confusion_counts(PRED, TARGET, 2))
    assert tuple(m) == METRIC_NAMES
    assert_metrics(
        m,
        {
            "dice": [10 / 12, 4 / 6],
            "iou": [5 / 7, 2 / 4],
            "accuracy": [7 / 9, 7 / 9],
            "sensitivity": [5 / 6, 2 / 3],
            "specificity": [2 / 3, 5 / 6],
            "precision": [5 / 6, 2 / 3],
        },
    )


def test_valid_mask_excludes_pixels() -> None:
    valid = torch.ones(3, 3, dtype=torch.bool)
    valid[1, 0] = False  # the FP of class 1, which is also the FN of class 0
    counts = confusion_counts(PRED, TARGET, 2, valid)
    assert counts.tolist() == [[5, 1, 0, 2], [2, 0, 1, 5]]
    m = metrics_from_counts(counts)
    assert_metrics(m, {"dice": [10 / 11, 4 / 5], "precision": [5 / 6, 2 / 2], "accuracy": [7 / 8, 7 / 8]})
    # float 0/1 masks work too, and changing labels outside the mask changes nothing
    pred2 = PRED.clone()
    pred2[1, 0] = 0
    assert torch.equal(confusion_counts(pred2, TARGET, 2, valid.float()), counts)


def test_multiclass_by_hand() -> None:
    #   target      pred        confusion (rows target, cols pred)
    #   0 1 2       0 1 1       t0: [4, 0, 0]
    #   0 1 2       0 2 2       t1: [0, 1, 1]
    #   0 0 2       0 0 0       t2: [1, 1, 1]
    target = t([0, 1, 2], [0, 1, 2], [0, 0, 2])
    pred = t([0, 1, 1], [0, 2, 2], [0, 0, 0])
    counts = confusion_counts(pred, target, 3)
    assert counts.tolist() == [[4, 1, 0, 4], [1, 1, 1, 6], [1, 1, 2, 5]]
    assert_metrics(
        metrics_from_counts(counts),
        {
            "dice": [8 / 9, 2 / 4, 2 / 5],
            "iou": [4 / 5, 1 / 3, 1 / 4],
            "accuracy": [8 / 9, 7 / 9, 6 / 9],
            "sensitivity": [1.0, 1 / 2, 1 / 3],
            "specificity": [4 / 5, 6 / 7, 5 / 6],
            "precision": [4 / 5, 1 / 2, 1 / 2],
        },
    )


def test_both_empty_is_nan() -> None:
    zeros = torch.zeros(3, 3, dtype=torch.long)
    counts = confusion_counts(zeros, zeros, 2)
    assert counts.tolist() == [[9, 0, 0, 0], [0, 0, 0, 9]]
    assert_metrics(
        metrics_from_counts(counts),
        {
            "dice": [1.0, NAN],
            "iou": [1.0, NAN],
            "accuracy": [1.0, 1.0],
            "sensitivity": [1.0, NAN],
            "specificity": [NAN, 1.0],
            "precision": [1.0, NAN],
        },
    )


def test_prediction_empty() -> None:
    counts = confusion_counts(torch.zeros(3, 3, dtype=torch.long), TARGET, 2)
    assert counts[1].tolist() == [0, 0, 3, 6]
    assert_metrics(
        {k: v[1] for k, v in metrics_from_counts(counts).items()},
        {"dice": 0.0, "iou": 0.0, "sensitivity": 0.0, "precision": NAN, "specificity": 1.0, "accuracy": 6 / 9},
    )


def test_target_empty() -> None:
    counts = confusion_counts(PRED, torch.zeros(3, 3, dtype=torch.long), 2)
    assert counts[1].tolist() == [0, 3, 0, 6]
    assert_metrics(
        {k: v[1] for k, v in metrics_from_counts(counts).items()},
        {"dice": 0.0, "iou": 0.0, "sensitivity": NAN, "precision": 0.0, "specificity": 6 / 9, "accuracy": 6 / 9},
    )


def test_batch_counts_match_per_image_and_pool() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (5, 7, 6), generator=g)
    pred = torch.randint(0, 4, (5, 7, 6), generator=g)
    valid = torch.rand(5, 7, 6, generator=g) > 0.3
    batch = batch_confusion_counts(pred, target, 4, valid)
    assert batch.shape == (5, 4, 4)
    for i in range(5):
        assert torch.equal(batch[i], confusion_counts(pred[i], target[i], 4, valid[i]))
    assert (batch.sum(-1) == valid.sum((1, 2)).unsqueeze(1)).all()  # every class sees every valid pixel once
    # metrics work on any leading shape; pooled = metrics of summed counts
    m = metrics_from_counts(batch)
    assert m["dice"].shape == (5, 4)
    pooled = metrics_from_counts(batch.sum(0))
    tp, fp, fn = (batch.sum(0)[:, i].double().numpy() for i in range(3))
    np.testing.assert_allclose(pooled["dice"], 2 * tp / (2 * tp + fp + fn))
    m2 = metrics_from_counts(batch.reshape(5, 1, 4, 4).numpy(), names=("iou",))
    assert set(m2) == {"iou"} and m2["iou"].shape == (5, 1, 4)


def test_label_out_of_range_raises() -> None:
    with pytest.raises(DualsegError, match="target"):
        confusion_counts(PRED, TARGET * 2, 2)
    with pytest.raises(DualsegError, match="prediction"):
        confusion_counts(PRED - 1, TARGET, 2)
    with pytest.raises(ValueError):
        confusion_counts(PRED, TARGET[:2], 2)
    with pytest.raises(DualsegError, match="did you mean 'dice'"):
        metrics_from_counts(np.zeros((2, 4)), names=("dcie",))


def test_logits_to_labels_and_probs() -> None:
    logits = torch.tensor([-1.0, 0.0, 0.1, 3.0]).reshape(1, 1, 2, 2)
    assert logits_to_labels(logits).tolist() == [[[0, 0], [1, 1]]]  # sigmoid > 0.5 <=> logit > 0
    probs = logits_to_probs(logits)
    assert probs.shape == (1, 2, 2, 2)
    torch.testing.assert_close(probs[:, 1], torch.sigmoid(logits[:, 0]))
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 2, 2))

    multi = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(logits_to_labels(multi), multi.argmax(1))
    torch.testing.assert_close(logits_to_probs(multi), multi.softmax(1))
    assert num_labels_for(1) == 2 and num_labels_for(2) == 2 and num_labels_for(5) == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_counts_on_cuda_match_cpu() -> None:
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 3, (4, 16, 16), generator=g)
    pred = torch.randint(0, 3, (4, 16, 16), generator=g)
    valid = torch.rand(4, 16, 16, generator=g) > 0.5
    cpu = batch_confusion_counts(pred, target, 3, valid)
    gpu = batch_confusion_counts(pred.cuda(), target.cuda(), 3, valid.cuda())
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
