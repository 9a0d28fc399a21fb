"""Error overlays: colours on hand-made masks, best/worst selection, and re-predicted cases equal the evaluated ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualseg.errors import DualsegError
from dualseg.inference.loading import load_inference_model
from dualseg.metrics import confusion_counts, metrics_from_counts
from dualseg.report.overlays import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    WRONG_CLASS_COLOUR,
    error_overlay,
    predict_cases,
    select_cases,
    shown_classes,
    side_by_side,
    write_case_overlays,
)
from dualseg.report.runs import load_run


def test_error_overlay_colours_each_kind_of_pixel():
    image = np.zeros((2, 3, 1), np.uint8)
    target = np.array([[1, 1, 0], [2, 0, 0]])
    pred = np.array([[1, 0, 1], [1, 0, 0]])
    valid = np.array([[1, 1, 1], [1, 1, 0]], bool)
    out = error_overlay(image, pred, target, shown=[1, 2], valid=valid, alpha=1.0)
    assert tuple(out[0, 0]) == TP_COLOUR and tuple(out[0, 1]) == FN_COLOUR and tuple(out[0, 2]) == FP_COLOUR
    assert tuple(out[1, 0]) == WRONG_CLASS_COLOUR and tuple(out[1, 1]) == (0, 0, 0)  # true negative: the image
    gray = np.full((2, 3, 1), 200, np.uint8)
    gray[0, 0] = 0  # so the display range is 0..200 -> 0..255
    dimmed = error_overlay(gray, pred * 0, target * 0, shown=[1], valid=valid)
    assert tuple(dimmed[1, 2]) == (102, 102, 102)  # outside the field of view: 255 * 0.4
    with pytest.raises(DualsegError, match="sizes differ"):
        error_overlay(image, pred[:1], target, shown=[1])


def test_shown_classes_and_panels():
    assert shown_classes([1, 2, 3], background=0) == [1, 2, 3]
    assert shown_classes([0, 1], background=None) == [0]  # ISBI 2012: the membrane
    panel = side_by_side(np.zeros((100, 60, 3), np.uint8), np.zeros((100, 60, 3), np.uint8), max_side=50)
    assert panel.shape == (50, 30 + 4 + 30, 3)


def test_select_cases(two_runs):
    run = load_run(two_runs[0], "test")
    values = run.per_case["mean"]["dice"]
    best, worst = select_cases(run, "dice", 2)
    ranked = sorted(values, key=values.get)
    assert [n for n, _ in best] == ranked[::-1][:2] and [n for n, _ in worst] == ranked[:2]
    best, worst = select_cases(run, "dice", 5)  # 6 images: split 3/3, none repeated
    assert len(best) == 3 and len(worst) == 3 and not {n for n, _ in best} & {n for n, _ in worst}
    with pytest.raises(DualsegError, match="no per-image 'not_a_metric'"):
        select_cases(run, "not_a_metric", 2)


def test_predicted_cases_are_the_evaluated_ones(two_runs, tmp_path):
    run = load_run(two_runs[0], "test")
    names = run.case_names[:2]
    trained = load_inference_model(run.path, "best")
    for case in predict_cases(trained, run.path, "test", names):
        counts = confusion_counts(torch.from_numpy(case.labels), torch.from_numpy(case.target), 2)
        dice = metrics_from_counts(counts.numpy(), ["dice"])["dice"]
        assert dice[0] == pytest.approx(run.per_case["membrane"]["dice"][case.name], abs=1e-6)
        assert case.image.shape[:2] == case.labels.shape == (64, 64)
    records = write_case_overlays(run, tmp_path / "ov", "dice", k=1)
    assert [r["kind"] for r in records] == ["best", "worst"] and records[0]["classes"] == ["membrane"]
    from PIL import Image

    assert Image.open(records[0]["path"]).size == (64 + 4 + 64, 64)
