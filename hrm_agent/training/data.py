"""Where training puzzles come from: tier mixes, a fresh stream or a fixed pool, the live batch.

Owns the draws of new puzzles (:class:`PuzzleSource`), the persistent batch of puzzles in flight
(:class:`Batch`), each puzzle's exploration minimum (:func:`draw_min_segments`) and the
held-out puzzles a run evaluates on (:func:`held_out_sets`). Every draw
takes the one ``np.random.Generator`` of the run, so all ranks draw alike. Must not touch torch,
the model or files.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from hrm_env.puzzles.tasks import PuzzleBatch, Task

__all__ = [
    "EVAL_SEED",
    "Batch",
    "PuzzleSource",
    "draw_min_segments",
    "held_out_sets",
    "parse_difficulty_mix",
    "sample_mix",
]

EVAL_SEED = 20261130
"""Seed of the held-out tier sets of ``eval_difficulty`` (with a hash of the tier name)."""


def parse_difficulty_mix(task: Task, text: str) -> list[tuple[str, float]]:
    """``"medium"`` -> ``[("medium", 1.0)]``; ``"easy:1,hard:3"`` -> ``[("easy", 0.25),
    ("hard", 0.75)]``. Raises ValueError naming the bad part."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight_text = part.strip().partition(":")
        task.check_difficulty(name.strip())
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"bad difficulty mix {text!r}: weight {weight_text!r} of {name!r} is not a number"
            ) from None
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"bad difficulty mix {text!r}: weight of {name!r} must be > 0")
        if name.strip() in mix:
            raise ValueError(f"bad difficulty mix {text!r}: {name!r} appears twice")
        mix[name.strip()] = weight
    total = sum(mix.values())
    return [(name, weight / total) for name, weight in mix.items()]


def sample_mix(
    task: Task, mix: list[tuple[str, float]] | None, rng: np.random.Generator, n: int
) -> PuzzleBatch:
    """``n`` fresh puzzles, each tier's share drawn from ``mix`` (as
    :func:`parse_difficulty_mix` gives it; None: the task's default tier), in random order."""
    if mix is None or len(mix) == 1:
        return task.sample(rng, n, None if mix is None else mix[0][0])
    counts = rng.multinomial(n, [weight for _, weight in mix])
    parts = [task.sample(rng, int(k), tier) for (tier, _), k in zip(mix, counts, strict=True) if k]
    return PuzzleBatch.concat(parts)[rng.permutation(n)]


class PuzzleSource:
    """Where training puzzles come from: a fresh stream, or a fixed pool augmented on the fly."""

    def __init__(self, task: Task, difficulty: str | None, pool: PuzzleBatch | None) -> None:
        self.task = task
        self.difficulty = difficulty
        self.mix = None if difficulty is None else parse_difficulty_mix(task, difficulty)
        self.pool = pool

    @classmethod
    def create(
        cls, task: Task, difficulty: str | None, train_size: int | None, rng: np.random.Generator
    ) -> PuzzleSource:
        source = cls(task, difficulty, None)
        if train_size is not None:
            source.pool = source._sample(rng, train_size)
        return source

    def _sample(self, rng: np.random.Generator, n: int) -> PuzzleBatch:
        return sample_mix(self.task, self.mix, rng, n)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (inputs, targets) rows, (n, S) uint8 each."""
        if n == 0:
            empty = np.zeros((0, self.task.seq_len), dtype=np.uint8)
            return empty, empty.copy()
        if self.pool is None:
            batch = self._sample(rng, n)
            return batch.inputs, batch.targets
        rows = rng.integers(0, len(self.pool), size=n)
        return self.task.augment(rng, self.pool.inputs[rows], self.pool.targets[rows])


@dataclass
class Batch:
    """The persistent global batch, kept identical on every rank (numpy, host memory)."""

    inputs: np.ndarray  # (B, S) uint8
    targets: np.ndarray  # (B, S) uint8
    segments: np.ndarray  # (B,) int64: segments run on the current puzzle
    min_segments: np.ndarray  # (B,) int64: exploration minimum of the current puzzle


def draw_min_segments(
    rng: np.random.Generator, n: int, max_segments: int, exploration_prob: float
) -> np.ndarray:
    """(n,) int64 minimum segments per new puzzle: 1, or with probability ``exploration_prob``
    uniform in [2, max_segments] (ACT exploration)."""
    explore = rng.random(n) < exploration_prob
    drawn = rng.integers(2, max_segments + 1, size=n) if max_segments >= 2 else 1
    return np.where(explore, drawn, 1).astype(np.int64)


def held_out_sets(task: Task, tiers: tuple[str, ...], size: int | None) -> dict[str, PuzzleBatch]:
    """The held-out puzzles of a run, by tier.

    Without ``tiers``, ``{"test": the first size puzzles of the bundled test set}`` (None: all).
    Otherwise ``size`` (None: 512) fresh puzzles of each tier, each drawn from its own stream
    seeded by the tier's name alone, apart from the training data: the same puzzles for every
    run, seed and resumption, whatever other tiers are listed.
    """
    if not tiers:
        test = task.test_set()
        return {"test": test if size is None else test[:size]}
    return {
        t: task.sample(np.random.default_rng([EVAL_SEED, zlib.crc32(t.encode())]), size or 512, t)
        for t in tiers
    }
