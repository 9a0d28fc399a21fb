"""Metric conventions: hand-made edge cases (all-empty, one-empty, perfect, FOV) for every convention, volume
grouping, and 1200 random binary and multi-class cases of the confusion metrics against MONAI and scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix
from sklearn.metrics import matthews_corrcoef

from dualseg.data.descriptions import get_description
from dualseg.errors import DualsegError
from dualseg.metrics import batch_confusion_counts, metrics_from_counts, summarize
from dualseg.metrics.conventions import CONVENTIONS, apply_empty_rule, group_volumes, volume_of

CLASSES = ["bg", "fg"]


def _counts(pred: list[list[int]], target: list[list[int]], valid=None) -> torch.Tensor:
    v = None if valid is None else torch.tensor(valid)
    return batch_confusion_counts(torch.tensor(pred), torch.tensor(target), 2, v)


# Four 1x4 "images" of a binary task: perfect, both empty, reference empty (false alarm), prediction empty (miss).
PERFECT = ([0, 1, 1, 0], [0, 1, 1, 0])
BOTH_EMPTY = ([0, 0, 0, 0], [0, 0, 0, 0])
FALSE_ALARM = ([1, 0, 0, 0], [0, 0, 0, 0])
MISS = ([0, 0, 0, 0], [0, 1, 0, 0])
CASES = [PERFECT, BOTH_EMPTY, FALSE_ALARM, MISS]
NAMES = ["v1_s1", "v1_s2", "v2_s1", "v2_s2"]


def _summary(convention: str, cases=CASES, **kw) -> dict:
    counts = _counts([p for p, _ in cases], [t for _, t in cases])
    s = summarize(list(counts), NAMES[: len(cases)], CLASSES, convention=convention, **kw)
    json.dumps(s, allow_nan=False)
    return s


def test_per_image_default_skips_both_empty() -> None:
    s = _summary("per_image")
    assert s["convention"] == "per-image mean, NaN-skip" and s["convention_name"] == "per_image"
    dice = [row["per_class"]["fg"]["dice"] for row in s["per_image"]]
    assert dice == [1.0, None, 0.0, 0.0]
    assert s["per_class"]["fg"]["dice"]["n"] == 3 and s["mean"]["dice"] == pytest.approx(1 / 3)


def test_drfl_plus_one_smoothing() -> None:
    s = _summary("drfl")
    # perfect (2*2+1)/(2*2+1) = 1; both empty 1/1 = 1; false alarm 1/(1+1) = 0.5; miss 1/2 = 0.5
    dice = [row["per_class"]["fg"]["dice"] for row in s["per_image"]]
    assert dice == [1.0, 1.0, 0.5, 0.5]
    iou = [row["per_class"]["fg"]["iou"] for row in s["per_image"]]
    assert iou == [1.0, 1.0, 0.5, 0.5]  # (TP + 1) / (TP + FP + FN + 1)
    assert s["mean"]["dice"] == pytest.approx(0.75) and s["per_class"]["fg"]["dice"]["n"] == 4
    # other metrics are not smoothed
    assert s["per_image"][2]["per_class"]["fg"]["precision"] == 0.0


def test_dataset_pools_one_confusion_matrix() -> None:
    s = _summary("dataset")
    # pooled fg: TP 2, FP 1, FN 1 -> Dice 4/6
    assert s["mean"]["dice"] == pytest.approx(2 / 3) == s["dataset_level"]["mean"]["dice"]
    assert s["per_class"]["fg"]["dice"] == {"mean": pytest.approx(2 / 3), "std": None, "n": 4}
    assert s["std"]["dice"] is None
    assert s["per_image"][0]["per_class"]["fg"]["dice"] == 1.0  # per-image rows are kept


def test_per_volume_sums_slices_and_skips_empty_volumes() -> None:
    vols = [volume_of(n, r"^(v\d)_") for n in NAMES]
    s = _summary("per_volume", volume_ids=vols)
    assert s["n_volumes"] == 2 and [v["n_slices"] for v in s["per_volume"]] == [2, 2]
    # v1 = perfect + both-empty -> Dice 1; v2 = false alarm + miss: TP 0, FP 1, FN 1 -> Dice 0
    assert [v["per_class"]["fg"]["dice"] for v in s["per_volume"]] == [1.0, 0.0]
    assert s["mean"]["dice"] == pytest.approx(0.5)
    assert s["per_volume"][1]["counts"]["fg"] == {"tp": 0, "fp": 1, "fn": 1, "tn": 6}
    # a volume whose class is empty in both prediction and reference is skipped (NaN)
    s2 = _summary("per_volume", cases=[BOTH_EMPTY, BOTH_EMPTY, PERFECT, PERFECT], volume_ids=vols)
    assert s2["per_volume"][0]["per_class"]["fg"]["dice"] is None and s2["mean"]["dice"] == 1.0


def test_transunet_empty_rule() -> None:
    vols = ["a", "b", "c", "d"]  # each slice its own volume
    hd = np.array([[np.nan, 0.0], [np.nan, np.nan], [np.nan, 28.0], [np.nan, 28.0]])
    s = _summary("transunet", volume_ids=vols, extra_per_volume={"hd95": hd})
    per = [(v["per_class"]["fg"]["dice"], v["per_class"]["fg"]["hd95"], v["per_class"]["fg"]["iou"])
           for v in s["per_volume"]]
    # perfect: computed; both empty: 0, 0 (prediction empty); false alarm: Dice 1, HD95 0; miss: 0, 0
    assert per == [(1.0, 0.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 1.0), (0.0, 0.0, 0.0)]
    assert s["mean"]["dice"] == 0.5 and s["per_class"]["fg"]["dice"]["n"] == 4
    # not rewritten: metrics TransUNet does not report
    assert s["per_volume"][2]["per_class"]["fg"]["precision"] == 0.0
    assert s["per_volume"][1]["per_class"]["fg"]["precision"] is None


def test_apply_empty_rule_keeps_computed_cases() -> None:
    counts = np.array([[[0, 0, 0, 0], [3, 1, 1, 5]]])
    values = metrics_from_counts(counts)
    out = apply_empty_rule(values, counts, "transunet")
    assert out["dice"][0, 1] == values["dice"][0, 1]
    assert out["dice"][0, 0] == 0.0  # prediction empty
    with pytest.raises(DualsegError, match="empty-mask rule"):
        apply_empty_rule(values, counts, "medpy")


def test_fov_only_counts_inside() -> None:
    pred, target = [[1, 1, 0, 0]], [[0, 1, 0, 0]]
    inside = [[False, True, True, True]]  # the false alarm at pixel 0 lies outside the FOV
    counts = _counts(pred, target, inside)
    for name in CONVENTIONS:
        s = summarize(list(counts), ["v1_s1"], CLASSES, convention=name, volume_ids=["v1"])
        assert s["mean"]["dice"] == 1.0, name
        assert s["dataset_level"]["counts"]["fg"] == {"tp": 1, "fp": 0, "fn": 0, "tn": 2}


def test_all_empty_dataset_is_undefined_except_smoothed() -> None:
    for name in CONVENTIONS:
        s = _summary(name, cases=[BOTH_EMPTY, BOTH_EMPTY], volume_ids=["v1", "v1"])
        expected = {"drfl": 1.0, "transunet": 0.0}.get(name)
        assert s["mean"]["dice"] == expected, name


def test_mean_all_includes_background() -> None:
    s = _summary("per_image", cases=[PERFECT])
    assert s["mean_all"]["iou"] == pytest.approx((s["per_class"]["bg"]["iou"]["mean"] + 1.0) / 2)
    assert s["mean"]["iou"] == 1.0


def test_volume_grouping_of_acdc_stems() -> None:
    pattern = get_description("acdc").volume_pattern
    stems = ["patient002_frame01_slice_10", "patient002_frame01_slice_2", "patient002_frame12_slice_1",
             "patient010_frame01_slice_1", "patient002_frame01_slice_1"]
    groups = group_volumes(stems, pattern)
    assert list(groups) == ["patient002_frame01", "patient002_frame12", "patient010_frame01"]
    assert [stems[i] for i in groups["patient002_frame01"]] == [
        "patient002_frame01_slice_1", "patient002_frame01_slice_2", "patient002_frame01_slice_10"]
    with pytest.raises(DualsegError, match="volume pattern"):
        volume_of("case7", pattern)
    with pytest.raises(DualsegError, match="volume id"):
        _summary("per_volume")
    with pytest.raises(DualsegError, match="unknown metric convention"):
        _summary("per_volumes")


def random_cases(num_labels: int, n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_labels, (n, size, size), generator=g)
    keep = torch.rand(n, 1, 1, generator=g)  # per-case agreement level, 0..1
    noise = torch.randint(0, num_labels, (n, size, size), generator=g)
    pred = torch.where(torch.rand(n, size, size, generator=g) < keep, target, noise)
    kind = torch.arange(n) % 5
    target[kind == 1] = 0  # reference empty
    pred[kind == 2] = 0  # prediction empty
    target[kind == 3] = 0  # both empty
    pred[kind == 3] = 0
    return pred, target


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("num_labels,n", [(2, 600), (4, 600)])
def test_1200_random_cases_against_monai_and_sklearn(num_labels: int, n: int) -> None:
    pred, target = random_cases(num_labels, n, seed=num_labels)
    counts = batch_confusion_counts(pred, target, num_labels)
    ours = metrics_from_counts(counts)
    onehot = lambda x: F.one_hot(x, num_labels).permute(0, 3, 1, 2).float()  # noqa: E731
    cm = get_confusion_matrix(onehot(pred), onehot(target), include_background=True)
    names = {"sensitivity": "sensitivity", "specificity": "specificity", "precision": "precision",
             "accuracy": "accuracy", "mcc": "mcc", "bm": "informedness", "dice": "f1 score", "iou": "threat score"}
    c = counts.numpy()
    for ours_name, monai_name in names.items():
        ref = compute_confusion_matrix_metric(monai_name, cm).numpy()
        # MONAI gives NaN for 0/0 too, except that its MCC and informedness use 0 for an undefined part
        undefined = np.isnan(ours[ours_name])
        np.testing.assert_allclose(ours[ours_name][~undefined], ref[~undefined], rtol=1e-5, atol=1e-6)
    both_empty = c[..., :3].sum(-1) == 0
    np.testing.assert_array_equal(np.isnan(ours["dice"]), both_empty)
    # scikit-learn MCC per case and class (one-vs-rest); sklearn returns 0 where ours is undefined (NaN)
    for i in range(0, n, 3):
        for k in range(num_labels):
            yt, yp = (target[i] == k).numpy().ravel(), (pred[i] == k).numpy().ravel()
            ref = matthews_corrcoef(yt, yp)
            value = ours["mcc"][i, k]
            assert (np.isnan(value) and ref == 0) or value == pytest.approx(ref, abs=1e-9)
