"""Shared by every test: headless SDL, hypothesis profiles, the ``tiny_reasoner`` fixture."""

from __future__ import annotations

import os

# Headless rendering: no window ever opens, on CI or a laptop.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw fresh examples on every local run (and remember failures); CI sets
# HYPOTHESIS_PROFILE=ci so that a clean clone always checks the same examples and a red run
# can be reproduced exactly.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def make_tiny_reasoner(task: str, seed: int = 0) -> Any:
    """A random-init ``tiny`` HRM behind the real TorchReasoner (skips if torch is missing)."""
    torch = pytest.importorskip("torch")
    from hrm_agent.config import HRMConfig
    from hrm_agent.model import HRM
    from hrm_agent.reasoner import TorchReasoner
    from hrm_env.puzzles.tasks import get_task

    # One intra-op thread: these models are tiny, and on a busy shared CPU torch's thread pool
    # spins against other processes and makes a 2 ms cycle take most of a second.
    torch.set_num_threads(1)
    spec = get_task(task)
    config = HRMConfig.preset("tiny", seq_len=spec.seq_len, vocab_size=spec.vocab_size)
    model = HRM(config, generator=torch.Generator().manual_seed(seed))
    return TorchReasoner(model, task, device="cpu")


@pytest.fixture
def tiny_reasoner():
    """Factory fixture: ``tiny_reasoner(task)``."""
    return make_tiny_reasoner


def solve_cycle_script(puzzles: Any, solve_at: Any, halt_after: int = 1) -> tuple[Any, Any]:
    """``answers`` and ``q`` scripts for a ``ScriptedReasoner``: puzzle i of ``puzzles`` is
    answered correctly from cycle ``solve_at[i]`` on, and its Q head says halt from cycle
    ``solve_at[i] + halt_after`` on. The scripts key on the puzzle, so rows may come in any
    order (the puzzles must be distinct)."""
    when = {row.tobytes(): s for row, s in zip(puzzles.inputs, solve_at, strict=True)}
    solution = {row.tobytes(): t for row, t in zip(puzzles.inputs, puzzles.targets, strict=True)}

    def answers(inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        s = np.array([when[row.tobytes()] for row in inputs])
        targets = np.stack([solution[row.tobytes()] for row in inputs])
        return np.where((cycles >= s)[:, None], targets, inputs)

    def q(inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        s = np.array([when[row.tobytes()] for row in inputs])
        halt = np.where(cycles >= s + halt_after, 1.0, -1.0)
        return np.stack([halt, np.zeros_like(halt)], axis=1)

    return answers, q


@pytest.fixture(scope="session")
def solve_script():
    """Factory fixture: ``solve_script(puzzles, solve_at, halt_after=1) -> (answers, q)``."""
    return solve_cycle_script
