"""summarize(): per-class mean/std, foreground mean, NaN skipping, pooled numbers, JSON output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dualseg.errors import DualsegError
from dualseg.metrics import STD_DDOF, batch_confusion_counts, summarize

# Hand-made counts [TP, FP, FN, TN] for 2 images, classes bg / a / b (foreground a, b).
#   dice bg: img1 12/14 = 6/7,  img2 12/13
#   dice a:  img1 4/6 = 2/3,    img2 0/0 = NaN (absent from prediction and reference)
#   dice b:  img1 2/5 = 0.4,    img2 6/7
IMG1 = [[6, 2, 0, 2], [2, 1, 1, 6], [1, 0, 3, 6]]
IMG2 = [[6, 0, 1, 3], [0, 0, 0, 10], [3, 1, 0, 6]]
CLASSES = ["bg", "a", "b"]


@pytest.fixture(scope="module")
def summary() -> dict:
    return summarize([torch.tensor(IMG1), np.array(IMG2)], ["img1", "img2"], CLASSES, foreground=[1, 2])


def test_header(summary: dict) -> None:
    assert summary["convention"] == "per-image mean, NaN-skip"
    assert summary["std_ddof"] == STD_DDOF == 1
    assert summary["n_images"] == 2
    assert summary["classes"] == CLASSES
    assert summary["foreground_classes"] == ["a", "b"]


def test_per_class_mean_std_and_nan_skip(summary: dict) -> None:
    a = summary["per_class"]["a"]["dice"]
    assert a["n"] == 1 and a["mean"] == pytest.approx(2 / 3)
    assert a["std"] is None  # sample std of one value is undefined
    b = summary["per_class"]["b"]["dice"]
    assert b["n"] == 2 and b["mean"] == pytest.approx((0.4 + 6 / 7) / 2)
    assert b["std"] == pytest.approx(abs(6 / 7 - 0.4) / math.sqrt(2))  # ddof=1
    assert b["std"] == pytest.approx(float(np.std([0.4, 6 / 7], ddof=1)))
    bg = summary["per_class"]["bg"]["dice"]
    assert bg["mean"] == pytest.approx((6 / 7 + 12 / 13) / 2)
    # specificity of a: img1 6/7, img2 10/10 (defined even though the class is absent)
    assert summary["per_class"]["a"]["specificity"]["n"] == 2
    assert summary["per_class"]["a"]["specificity"]["mean"] == pytest.approx((6 / 7 + 1) / 2)


def test_foreground_mean_and_std(summary: dict) -> None:
    # mean over foreground classes of the per-class means
    assert summary["mean"]["dice"] == pytest.approx((2 / 3 + (0.4 + 6 / 7) / 2) / 2)
    # std over images of each image's foreground mean (img2: a is NaN, so only b)
    img1, img2 = (2 / 3 + 0.4) / 2, 6 / 7
    assert summary["std"]["dice"] == pytest.approx(abs(img1 - img2) / math.sqrt(2))
    assert summary["per_image"][0]["mean"]["dice"] == pytest.approx(img1)
    assert summary["per_image"][1]["mean"]["dice"] == pytest.approx(img2)


def test_dataset_level_pooled(summary: dict) -> None:
    ds = summary["dataset_level"]
    # pooled a: [2, 1, 1, 16] -> 4/6; pooled b: [4, 1, 3, 12] -> 8/12
    assert ds["counts"]["a"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 16}
    assert ds["per_class"]["a"]["dice"] == pytest.approx(2 / 3)
    assert ds["per_class"]["b"]["dice"] == pytest.approx(2 / 3)
    assert ds["per_class"]["b"]["iou"] == pytest.approx(4 / 8)
    assert ds["per_class"]["b"]["sensitivity"] == pytest.approx(4 / 7)
    assert ds["mean"]["dice"] == pytest.approx(2 / 3)
    assert ds["mean"]["precision"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_per_image_and_json(summary: dict) -> None:
    names = [row["name"] for row in summary["per_image"]]
    assert names == ["img1", "img2"]
    img2 = summary["per_image"][1]
    assert img2["per_class"]["a"]["dice"] is None  # NaN -> None
    assert img2["per_class"]["a"]["specificity"] == 1.0
    assert img2["counts"]["b"] == {"tp": 3, "fp": 1, "fn": 0, "tn": 6}
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary


def test_class_never_defined_is_skipped() -> None:
    zeros = torch.zeros(4, 4, dtype=torch.long)
    pred = torch.stack([zeros, zeros.clone()])
    target = pred.clone()
    pred[0, 0, 0] = target[0, 0, 0] = 1  # class 1 present in image 0; class 2 never appears
    counts = batch_confusion_counts(pred, target, 3)
    s = summarize(list(counts), ["x", "y"], CLASSES)  # foreground defaults to all but class 0
    assert s["foreground_classes"] == ["a", "b"]
    assert s["per_class"]["b"]["dice"] == {"mean": None, "std": None, "n": 0}
    assert s["mean"]["dice"] == 1.0  # only class a counts
    assert s["dataset_level"]["per_class"]["b"]["dice"] is None
    assert s["per_image"][1]["mean"]["dice"] is None  # nothing defined in image y
    json.dumps(s, allow_nan=False)


def test_extra_per_image_metric() -> None:
    hd95 = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, 5.0]])
    s = summarize([IMG1, IMG2], ["img1", "img2"], CLASSES, extra_per_image={"hd95": hd95})
    assert s["per_class"]["b"]["hd95"]["mean"] == pytest.approx(4.0)
    assert s["mean"]["hd95"] == pytest.approx((1.0 + 4.0) / 2)
    assert "hd95" not in s["dataset_level"]["mean"]
    json.dumps(s, allow_nan=False)


def test_bad_inputs_raise() -> None:
    with pytest.raises(DualsegError, match="class names"):
        summarize([IMG1], ["img1"], ["bg", "a"])
    with pytest.raises(DualsegError, match="foreground"):
        summarize([IMG1], ["img1"], CLASSES, foreground=[3])
    with pytest.raises(DualsegError, match="image names"):
        summarize([IMG1, IMG2], ["img1"], CLASSES)
    with pytest.raises(DualsegError, match="no images"):
        summarize([], [], CLASSES)
    with pytest.raises(DualsegError, match="unique"):
        summarize([IMG1], ["img1"], ["bg", "a", "a"])
