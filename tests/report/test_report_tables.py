"""Tables: mean ± std text, the best value per column in bold (lower-is-better metrics too), Markdown form."""

from __future__ import annotations

import math

import pytest

from dualseg.report.runs import load_runs
from dualseg.report.tables import (
    MISSING,
    class_tables,
    format_value,
    method_table,
    metric_table,
    pooled_table,
    significance_table,
)


def test_format_value():
    assert format_value(0.82134, 0.03102) == "0.8213 ± 0.0310"
    assert format_value(0.5, None, digits=2) == "0.50"
    assert format_value(None, 0.1) == MISSING and format_value(math.nan) == MISSING
    assert format_value({"nested": 1}) == MISSING and format_value(0.5, math.inf) == "0.5000"


def test_best_value_in_bold_per_column():
    values = {
        "U-Net": {"dice": (0.80, 0.02), "hd95": (12.0, 3.0)},
        "DRFL": {"dice": (0.83, 0.01), "hd95": (9.5, 2.0)},
        "DS2F": {"dice": (0.83004, 0.03), "hd95": (None, None)},
    }
    table = metric_table("test", values, ["dice", "hd95"])
    bold = {row[0].text: [c.bold for c in row[1:]] for row in table.rows}
    # dice: DRFL and DS2F print the same 4-digit value, both bold; hd95: lower is better, DS2F has no value
    assert bold == {"U-Net": [False, False], "DRFL": [True, True], "DS2F": [True, False]}
    md = table.to_markdown().splitlines()
    assert md[2] == "| method | dice | hd95 |" and md[3] == "|:---|---:|---:|"
    assert md[5] == "| DRFL | **0.8300 ± 0.0100** | **9.5000 ± 2.0000** |"
    assert md[6] == f"| DS2F | **0.8300 ± 0.0300** | {MISSING} |"


def test_no_bold_with_one_value_or_when_disabled():
    single = metric_table("t", {"a": {"dice": (0.9, None)}, "b": {}}, ["dice"])
    assert not any(c.bold for row in single.rows for c in row)
    rows = {"fold0": {"dice": (0.7, None)}, "fold1": {"dice": (0.8, None)}}
    assert not any(c.bold for row in metric_table("t", rows, ["dice"], bold_best=False).rows for c in row)


def test_pipes_in_names_are_escaped():
    md = metric_table("t", {"a|b": {"dice": (0.5, 0.1)}}, ["dice"]).to_markdown()
    assert "| a\\|b |" in md


def test_tables_from_real_runs(two_runs):
    runs = load_runs(two_runs, "test")
    summary = runs[0].summary
    table = method_table(runs, ["dice", "iou"])
    assert table.rows[0][0].text == "small_a"
    assert table.rows[0][1].text == format_value(summary["mean"]["dice"], summary["std"]["dice"])
    assert sum(r[1].bold for r in table.rows) >= 1
    per_class = class_tables(runs, ["dice"])
    assert [t.title.split("'")[1] for t in per_class] == ["membrane", "cell_interior"]
    stats = summary["per_class"]["membrane"]["dice"]
    assert per_class[0].rows[0][1].text == format_value(stats["mean"], stats["std"])
    pooled = pooled_table(runs, ["dice"])
    assert pooled.rows[1][1].text == format_value(runs[1].summary["dataset_level"]["mean"]["dice"])


def test_significance_table_marks_significant_p():
    rows = [{"class": "mean", "metric": "dice", "n": 8, "mean_a": 0.8, "mean_b": 0.85, "mean_diff": 0.05,
             "wilcoxon_p": 0.0078, "t_p": 0.06}]
    table = significance_table("A", "B", rows)
    cells = table.rows[0]
    assert [c.text for c in cells] == ["mean", "dice", "8", "0.8000", "0.8500", "+0.0500", "0.0078", "0.0600"]
    assert [c.bold for c in cells[-2:]] == [True, False]


@pytest.mark.parametrize("metric,best", [("dice", "b"), ("HD95", "a"), ("asd", "a"), ("psnr", "b")])
def test_direction_of_best(metric, best):
    table = metric_table("t", {"a": {metric: (0.9, None)}, "b": {metric: (1.0, None)}}, [metric])
    assert [row[0].text for row in table.rows if row[1].bold] == [best]
