"""Cross-validation members and the mean ± std aggregate over them (hand-made summaries)."""

from __future__ import annotations

import statistics

import pytest

from dualseg.engine.cv import aggregate, member_config, plan_members
from dualseg.errors import DualsegError


def test_members_of_folds_and_seeds(tmp_path):
    assert [m.name for m in plan_members(2, None, 0)] == ["fold0", "fold1"]
    assert [m.name for m in plan_members(None, 3, 5)] == ["seed5", "seed6", "seed7"]
    both = plan_members(2, 2, 0)
    assert [(m.fold, m.seed, m.name) for m in both] == [(0, 0, "fold0_seed0"), (0, 1, "fold0_seed1"),
                                                        (1, 0, "fold1_seed0"), (1, 1, "fold1_seed1")]
    cfg = member_config({"data": {"root": "x", "split": {"seed": 3}}}, both[3], 2, tmp_path)
    assert (cfg.seed, cfg.data.split.strategy, cfg.data.split.folds, cfg.data.split.fold) == (1, "kfold", 2, 1)
    assert cfg.data.split.seed == 3 and cfg.output_dir == str(tmp_path / "fold1_seed1")
    for folds, seeds, message in ((None, None, "give --folds"), (1, None, "at least 2"), (None, 0, "at least 1")):
        with pytest.raises(DualsegError, match=message):
            plan_members(folds, seeds, 0)


def _summary(dice_fg, dice_a, pooled, extra=None):
    mean = {"dice": dice_fg, **(extra or {})}
    return {"classes": ["bg", "a"], "mean": mean,
            "per_class": {"bg": {"dice": {"mean": 0.99}}, "a": {"dice": {"mean": dice_a}}},
            "dataset_level": {"mean": {"dice": pooled}}}


def test_aggregate_is_mean_and_sample_std_over_members():
    summaries = [_summary(0.80, 0.80, 0.81, {"hd95": 4.0}), _summary(0.70, 0.70, 0.72, {"per_volume": {"x": 1}}),
                 _summary(0.75, None, 0.74)]
    agg = aggregate(summaries)
    assert agg["n_members"] == 3
    dice = agg["mean"]["dice"]
    assert dice["mean"] == pytest.approx(0.75) and dice["std"] == pytest.approx(statistics.stdev([0.8, 0.7, 0.75]))
    assert dice["values"] == [0.8, 0.7, 0.75]
    class_a = agg["per_class"]["a"]["dice"]  # one member undefined: n = 2
    assert class_a["n"] == 2 and class_a["mean"] == pytest.approx(0.75)
    assert agg["mean"]["hd95"] == {"mean": 4.0, "std": None, "n": 1, "values": [4.0, None, None]}
    assert "per_volume" not in agg["mean"]  # a nested entry of a newer summary is not a metric
    assert agg["dataset_level"]["dice"]["mean"] == pytest.approx((0.81 + 0.72 + 0.74) / 3)
