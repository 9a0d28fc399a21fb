"""Reading run directories: per_image.csv columns by class suffix, unknown columns ignored, labels, clear errors."""

from __future__ import annotations

import math
import shutil

import pytest

from dualseg.errors import DualsegError
from dualseg.report.runs import MEAN, load_run, load_runs, read_per_image, select_metrics, unique_labels


def test_columns_split_on_the_longest_class_suffix(tmp_path):
    path = tmp_path / "per_image.csv"
    path.write_text("name,dice_interior,dice_cell_interior,pr_auc_cell_interior,volume_id,dice_interior_extra\n"
                    "a,0.5,0.25,0.9,v1,7\n"
                    "b,,0.75,0.8,v1,7\n")
    per_case = read_per_image(path, ["interior", "cell_interior"], ["interior", "cell_interior"])
    assert per_case["interior"]["dice"]["a"] == 0.5 and math.isnan(per_case["interior"]["dice"]["b"])
    assert list(per_case["interior"]) == ["dice"]  # dice_interior_extra and volume_id end in no class name
    assert per_case["cell_interior"]["dice"] == {"a": 0.25, "b": 0.75}
    assert per_case["cell_interior"]["pr_auc"] == {"a": 0.9, "b": 0.8}
    assert per_case[MEAN]["dice"] == {"a": pytest.approx(0.375), "b": 0.75}  # NaN skipped, as the summary's mean
    assert per_case[MEAN]["pr_auc"] == {"a": 0.9, "b": 0.8}


def test_duplicate_names_are_an_error(tmp_path):
    path = tmp_path / "per_image.csv"
    path.write_text("name,dice_fg\na,0.5\na,0.6\n")
    with pytest.raises(DualsegError, match="twice"):
        read_per_image(path, ["fg"], ["fg"])


def test_real_run_loads_with_its_config_name(two_runs):
    run = load_run(two_runs[0], "test")
    assert run.name == "small_a" and run.model == "unet" and len(run.case_names) == 6
    assert run.per_case[MEAN]["dice"].keys() == run.per_case["membrane"]["dice"].keys()
    mean_of_images = sum(run.per_case[MEAN]["dice"].values()) / 6
    assert mean_of_images == pytest.approx(run.summary["mean"]["dice"])
    assert select_metrics([run], None)[:2] == ["dice", "iou"]
    with pytest.raises(DualsegError, match="metric 'dise' is in no run's summary \\(did you mean 'dice'\\?\\)"):
        select_metrics([run], ["dise"])


def test_missing_evaluation_names_the_command(two_runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    with pytest.raises(DualsegError, match=r"has no val evaluation \(evaluated splits: test\); run 'dualseg "
                                           r"evaluate .*copy --split val'"):
        load_run(copy, "val")


def test_labels_and_names(two_runs, tmp_path):
    assert unique_labels(["unet", "unet", "drfl"], [tmp_path / "x", tmp_path / "y", tmp_path / "z"]) == [
        "unet (x)", "unet (y)", "drfl"]
    runs = load_runs(two_runs, "test", names=["U-Net", "U-Net lr 0.01"])
    assert [r.name for r in runs] == ["U-Net", "U-Net lr 0.01"]
    with pytest.raises(DualsegError, match="2 runs"):
        load_runs(two_runs, "test", names=["only one"])
