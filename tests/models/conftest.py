"""Model tests run on tiny tensors, where one intra-op thread is much faster than several (no sync overhead,
and no slowdown when the CPU is shared with other test processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
