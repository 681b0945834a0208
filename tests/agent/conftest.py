"""Fixtures of the agent tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared CPU: one intra-op thread avoids OpenMP spin contention (several
    times faster here than torch's default pool)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
