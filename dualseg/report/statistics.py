"""Paired significance tests between two runs evaluated on the same cases (as DS2F reports p-values).

For each class (and the per-image foreground mean) and each metric, the two runs' per-image values are paired by
image name, pairs where either value is undefined (NaN) are dropped, and two two-sided tests are run with SciPy:
the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``: zero differences dropped, Wilcoxon's convention; exact
distribution for small samples without ties, normal approximation otherwise) and the paired t-test
(``scipy.stats.ttest_rel``).

Degenerate cases, chosen here: fewer than two pairs gives no p-value (``None``); identical values on every case
give p = 1 for both tests (no difference at all); a constant non-zero difference leaves the t statistic undefined
(zero variance), so its t-test p-value is ``None`` while the Wilcoxon test still applies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from dualseg.errors import DualsegError
from dualseg.report.runs import MEAN, RunResult

SIGNIFICANCE = 0.05  # p-values below this are marked in reports


@dataclass
class PairedTest:
    """One paired comparison; ``mean_diff`` is B - A over the kept pairs (positive: B has the larger mean)."""

    n: int
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    wilcoxon_statistic: float | None
    wilcoxon_p: float | None
    t_statistic: float | None
    t_p: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Wilcoxon signed-rank and paired t-test of ``b`` against ``a`` (same length, same case order)."""
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise DualsegError(f"paired values need two equal-length lists, got {a_arr.shape} and {b_arr.shape}")
    keep = ~(np.isnan(a_arr) | np.isnan(b_arr))
    a_arr, b_arr = a_arr[keep], b_arr[keep]
    n = int(a_arr.size)
    if n == 0:
        return PairedTest(0, None, None, None, None, None, None, None)
    diff = b_arr - a_arr
    result = PairedTest(n, _num(a_arr.mean()), _num(b_arr.mean()), _num(diff.mean()), None, None, None, None)
    if n < 2:
        return result
    if not np.any(diff):
        result.wilcoxon_statistic, result.wilcoxon_p, result.t_statistic, result.t_p = 0.0, 1.0, 0.0, 1.0
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        w = stats.wilcoxon(b_arr, a_arr, alternative="two-sided")
        result.wilcoxon_statistic, result.wilcoxon_p = _num(w.statistic), _num(w.pvalue)
        if np.ptp(diff) > 0:
            t = stats.ttest_rel(b_arr, a_arr, alternative="two-sided")
            result.t_statistic, result.t_p = _num(t.statistic), _num(t.pvalue)
    return result


def matched_cases(run_a: RunResult, run_b: RunResult) -> list[str]:
    """The image names both runs were evaluated on; an error when the two sets differ."""
    names_a, names_b = run_a.case_names, run_b.case_names
    only_a, only_b = sorted(set(names_a) - set(names_b)), sorted(set(names_b) - set(names_a))
    if only_a or only_b:
        parts = [f"{len(x)} only in {r.name} (e.g. '{x[0]}')" for x, r in ((only_a, run_a), (only_b, run_b)) if x]
        raise DualsegError(
            f"{run_a.name} and {run_b.name} were evaluated on different cases: {'; '.join(parts)}; paired tests "
            "need the same images: evaluate both runs on the same split of the same data (same split.json)"
        )
    return sorted(names_a)


def compare_runs(
    run_a: RunResult, run_b: RunResult, metrics: Sequence[str] | None = None
) -> list[dict]:
    """Paired tests of B against A for every (class, metric) both runs have; rows for the foreground mean first.

    Each row: ``{"class", "metric", **PairedTest.to_dict()}``.
    """
    cases = matched_cases(run_a, run_b)
    classes = [MEAN] + [c for c in run_a.classes if c in run_b.classes]
    rows = []
    for cls in classes:
        values_a, values_b = run_a.per_case.get(cls, {}), run_b.per_case.get(cls, {})
        for metric in metrics or list(values_a):
            if metric not in values_a or metric not in values_b:
                continue
            test = paired_test([values_a[metric][c] for c in cases], [values_b[metric][c] for c in cases])
            rows.append({"class": cls, "metric": metric, **test.to_dict()})
    return rows


def format_p(p: float | None) -> str:
    """``0.0312``, ``<1e-4`` for tiny values, ``–`` when undefined."""
    if p is None:
        return "–"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"
