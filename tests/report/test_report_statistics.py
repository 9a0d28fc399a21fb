"""Paired tests against hand computations (exact Wilcoxon by enumeration, t from its formula) and real runs."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from dualseg.errors import DualsegError
from dualseg.report.runs import MEAN, load_run
from dualseg.report.statistics import compare_runs, format_p, paired_test

A = [0.81, 0.77, 0.90, 0.65, 0.72, 0.88, 0.69, 0.93]
B = [0.84, 0.79, 0.89, 0.73, 0.77, 0.95, 0.68, 0.99]  # differences all distinct in size, no zeros


def exact_wilcoxon_p(diff: list[float]) -> float:
    """Two-sided exact p: the share of the 2^n sign assignments whose min(W+, W-) is at most the observed one."""
    ranks = stats.rankdata(np.abs(diff))
    total = ranks.sum()
    observed = min(ranks[np.asarray(diff) > 0].sum(), ranks[np.asarray(diff) < 0].sum())
    hits = 0
    for signs in itertools.product((0, 1), repeat=len(diff)):
        w_plus = sum(r for r, s in zip(ranks, signs) if s)
        hits += min(w_plus, total - w_plus) <= observed + 1e-9
    return hits / 2 ** len(diff)


def test_wilcoxon_matches_the_exact_distribution():
    diff = [b - a for a, b in zip(A, B)]
    result = paired_test(A, B)
    assert result.n == 8
    assert result.wilcoxon_p == pytest.approx(exact_wilcoxon_p(diff), rel=1e-12)
    ranks = stats.rankdata(np.abs(diff))
    assert result.wilcoxon_statistic == min(ranks[np.array(diff) > 0].sum(), ranks[np.array(diff) < 0].sum())


def test_paired_t_matches_its_formula():
    d = np.subtract(B, A)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    result = paired_test(A, B)
    assert result.t_statistic == pytest.approx(t, rel=1e-12)
    assert result.t_p == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1), rel=1e-10)
    assert result.mean_diff == pytest.approx(d.mean()) and result.mean_a == pytest.approx(np.mean(A))


def test_nan_pairs_are_dropped_and_degenerate_cases_are_explicit():
    with_nan = paired_test(A + [math.nan, 0.5], B + [0.7, math.nan])
    assert with_nan.n == 8 and with_nan.t_p == pytest.approx(paired_test(A, B).t_p)
    same = paired_test(A, A)
    assert same.wilcoxon_p == 1.0 and same.t_p == 1.0 and same.mean_diff == 0.0
    shifted = paired_test(A, [a + 0.1 for a in A])
    assert shifted.t_p is None and shifted.wilcoxon_p < 0.05  # all 8 differences positive: still testable
    one = paired_test([0.5], [0.6])
    assert one.n == 1 and one.wilcoxon_p is None and one.t_p is None
    with pytest.raises(DualsegError, match="equal-length"):
        paired_test([1.0, 2.0], [1.0])


def test_format_p():
    assert format_p(None) == "–" and format_p(3e-6) == "<1e-4" and format_p(0.03125) == "0.0312"


def _csv_column(run_dir, column):
    with open(run_dir / "eval/test/per_image.csv") as f:
        return {r["name"]: float(r[column]) if r[column] else math.nan for r in csv.DictReader(f)}


def test_compare_real_runs_pairs_cases_by_name(two_runs):
    run_a, run_b = (load_run(p, "test") for p in two_runs)
    rows = compare_runs(run_a, run_b, ["dice", "iou"])
    assert [(r["class"], r["metric"]) for r in rows] == [
        (MEAN, "dice"), (MEAN, "iou"), ("membrane", "dice"), ("membrane", "iou"),
        ("cell_interior", "dice"), ("cell_interior", "iou")]
    a, b = _csv_column(two_runs[0], "dice_membrane"), _csv_column(two_runs[1], "dice_membrane")
    names = sorted(a)
    expected = stats.wilcoxon([b[n] for n in names], [a[n] for n in names])
    membrane = rows[2]
    assert membrane["n"] == 6 and membrane["wilcoxon_p"] == pytest.approx(expected.pvalue)
    assert membrane["t_p"] == pytest.approx(stats.ttest_rel([b[n] for n in names], [a[n] for n in names]).pvalue)


def test_different_case_sets_are_an_error(two_runs):
    run_a, run_b = (load_run(p, "test") for p in two_runs)
    for table in run_b.per_case.values():
        for values in table.values():
            values["extra_case"] = values.pop(sorted(values)[0])
    with pytest.raises(DualsegError, match="different cases: 1 only in small_a .* 1 only in small_b"):
        compare_runs(run_a, run_b)
