"""Bounded-memory statistics over a stream of pixel chunks: exact moments, a fixed-size uniform sample for
percentiles, and counted values (sizes, areas) summarised without keeping one entry per item."""

from __future__ import annotations

from collections import Counter

import numpy as np

PERCENTILES = (0.5, 1, 5, 25, 50, 75, 95, 99, 99.5)
SAMPLE_SIZE = 100_000  # pixels kept per population for the percentiles


class PixelStats:
    """Per-channel statistics of (N, C) pixel chunks.

    Count, min, max, mean and standard deviation are exact, streamed with the pairwise update of Chan et al.
    (mean and sum of squared deviations combined chunk by chunk, in float64). Percentiles come from a uniform sample
    of at most ``size`` pixels without replacement (bottom-k sampling: every pixel gets a random key, the ``size``
    smallest keys are kept), so memory does not grow with the data; while fewer pixels than ``size`` have been seen,
    the sample holds them all and the percentiles are exact.
    """

    def __init__(self, channels: int, size: int = SAMPLE_SIZE, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        self.min = np.full(channels, np.inf)
        self.max = np.full(channels, -np.inf)
        self.keys = np.empty(0)
        self.sample = np.empty((0, channels), dtype=np.float32)

    def add(self, pixels: np.ndarray) -> None:
        if len(pixels) == 0:
            return
        x = pixels.astype(np.float64)
        n_b, mean_b = len(x), x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / total
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / total
        self.n = total
        self.min = np.minimum(self.min, x.min(axis=0))
        self.max = np.maximum(self.max, x.max(axis=0))
        keys = self.rng.random(n_b)
        if len(self.keys) >= self.size:  # only keys below the current largest kept one can enter
            keep = keys < self.keys.max()
            keys, pixels = keys[keep], pixels[keep]
        keys = np.concatenate([self.keys, keys])
        sample = np.concatenate([self.sample, pixels.astype(np.float32)])
        if len(keys) > self.size:
            chosen = np.argpartition(keys, self.size - 1)[: self.size]
            keys, sample = keys[chosen], sample[chosen]
        self.keys, self.sample = keys, sample

    def summary(self) -> list[dict] | None:
        """One dict per channel (min, max, mean, std, percentiles), or None when no pixel was seen."""
        if self.n == 0:
            return None
        std = np.sqrt(self.m2 / self.n)
        table = np.percentile(self.sample, PERCENTILES, axis=0)
        return [
            {"min": float(self.min[c]), "max": float(self.max[c]), "mean": float(self.mean[c]), "std": float(std[c]),
             "percentiles": {f"{p:g}": float(table[i, c]) for i, p in enumerate(PERCENTILES)}}
            for c in range(len(self.mean))
        ]


def counted_percentile(counts: Counter, q: float) -> int | float:
    """The ``q``-th percentile (0..100, lower value) of the values of ``counts`` (value -> how often seen)."""
    values = sorted(counts)
    cumulative = np.cumsum([counts[v] for v in values])
    rank = q / 100 * (cumulative[-1] - 1)
    return values[int(np.searchsorted(cumulative, rank, side="right"))]


def spread(counts: Counter) -> dict | None:
    """Smallest, (lower) median and largest of counted values, or None when there are none."""
    if not counts:
        return None
    return {"min": min(counts), "median": counted_percentile(counts, 50), "max": max(counts)}
