"""How much of the training time goes to waiting for data."""

from __future__ import annotations

import time


class DataWait:
    """The fraction of step time spent waiting for the next batch.

    A step runs from the end of the previous one (or the start of the epoch) to the end of its optimizer update; its
    wait is the part before its batch arrived from the DataLoader. ``fraction`` = total wait / total step time: near
    0 means the model is the bottleneck, a large value that loading and augmentation are (raise
    ``data.num_workers``). The trainer reads the loss value at the end of every step, which synchronises with the
    GPU, so step ends are real ends.
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self._clock = clock
        self._last_end = clock()
        self.waited = 0.0
        self.total = 0.0

    def batch_ready(self) -> None:
        """Call when the batch of a step has arrived."""
        self.waited += self._clock() - self._last_end

    def step_done(self) -> None:
        """Call when the step's update is finished."""
        now = self._clock()
        self.total += now - self._last_end
        self._last_end = now

    @property
    def fraction(self) -> float:
        return self.waited / self.total if self.total > 0 else 0.0
