"""MCC and bookmaker informedness (DS2F's metrics) against scikit-learn on random binary cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, matthews_corrcoef

from dualseg.metrics import confusion_counts, metrics_from_counts


def test_against_sklearn_on_random_cases():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(300):
        p_fg, t_fg = rng.uniform(0, 1, 2)
        pred = (rng.random((12, 12)) < p_fg).astype(np.int64)
        target = (rng.random((12, 12)) < t_fg).astype(np.int64)
        m = metrics_from_counts(confusion_counts(torch.from_numpy(pred), torch.from_numpy(target), 2))
        defined = pred.min() != pred.max() and target.min() != target.max()
        if defined:
            assert m["mcc"][1] == pytest.approx(matthews_corrcoef(target.ravel(), pred.ravel()), abs=1e-12)
            bm = balanced_accuracy_score(target.ravel(), pred.ravel(), adjusted=True)
            assert m["bm"][1] == pytest.approx(bm, abs=1e-12)
            checked += 1
        else:
            assert np.isnan(m["mcc"][1])  # sklearn returns 0 here by convention; dualseg says undefined
    assert checked > 200


def test_hand_values():
    counts = np.array([[[0, 0, 0, 0], [3, 1, 2, 4]]], dtype=np.int64)  # class 1: TP 3, FP 1, FN 2, TN 4
    m = metrics_from_counts(counts)
    assert m["mcc"][0, 1] == pytest.approx((3 * 4 - 1 * 2) / np.sqrt(4 * 5 * 5 * 6))
    assert m["bm"][0, 1] == pytest.approx(3 / 5 + 4 / 5 - 1)
