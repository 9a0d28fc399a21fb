"""Average precision (PR-AUC) against scikit-learn's average_precision_score, binary and one-vs-rest per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from dualseg.metrics.ranking import average_precision, average_precision_per_class


def test_binary_against_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for i in range(400):
        n = int(rng.integers(2, 200))
        positive = rng.random(n) < rng.uniform(0.05, 0.95)
        scores = rng.random(n) * 0.5 + 0.5 * positive * rng.random()
        if i % 2:
            scores = np.round(scores, 1)  # many ties: one threshold per distinct score
        if not positive.any():
            assert np.isnan(average_precision(scores, positive))
            continue
        expected = average_precision_score(positive, scores)
        assert average_precision(scores, positive) == pytest.approx(expected, abs=1e-12)
        checked += 1
    assert checked > 380


def test_no_positive_is_nan_and_perfect_ranking_is_one() -> None:
    assert np.isnan(average_precision(np.array([0.1, 0.9]), np.array([0, 0])))
    assert average_precision(np.array([0.1, 0.9, 0.8]), np.array([0, 1, 1])) == 1.0
    # one positive ranked second among 3 equal scores: precision 1/3 at the only threshold
    assert average_precision(np.array([0.5, 0.5, 0.5]), np.array([0, 1, 0])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("num_labels", [2, 4])
def test_one_vs_rest_per_class_with_fov(num_labels: int) -> None:
    g = torch.Generator().manual_seed(num_labels)
    for _ in range(40):
        logits = torch.randn(num_labels, 16, 16, generator=g)
        probs = torch.softmax(logits, 0)
        target = torch.randint(0, num_labels, (16, 16), generator=g)
        valid = torch.rand(16, 16, generator=g) > 0.3
        ours = average_precision_per_class(probs, target, valid)
        t, p = target[valid].numpy(), probs[:, valid].double().numpy()
        for c in range(num_labels):
            if (t == c).any():
                assert ours[c] == pytest.approx(average_precision_score(t == c, p[c]), abs=1e-12)
            else:
                assert np.isnan(ours[c])
    only = average_precision_per_class(probs, target, classes=[1])
    assert np.isnan(only[0]) and not np.isnan(only[1])
