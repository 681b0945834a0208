"""Write puzzle files in the public CSV formats, using every core.

The work is cut into fixed-size chunks, each with its own child seed spawned from one
``np.random.SeedSequence``, so the file depends on the seed alone, not on the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .tasks import PuzzleBatch, get_task

__all__ = ["generate_batch", "write_puzzle_csv", "CHUNK"]

#: Puzzles per work unit: small enough for a smooth progress bar, large enough to amortise IPC.
CHUNK = 64


def _chunk(task_name: str, difficulty: str, n: int, seed: np.random.SeedSequence) -> PuzzleBatch:
    # Unaugmented on purpose: a data file holds the generator's own puzzles, augmentation is the
    # trainer's business.
    rng = np.random.default_rng(seed)
    if task_name == "maze":
        from . import maze

        m = maze.generate(rng, difficulty, n)
        return PuzzleBatch(m.questions, m.answers, np.asarray(m.ratings, dtype=np.int32))
    from . import sudoku

    s = sudoku.generate(rng, difficulty, n, size=9 if task_name == "sudoku" else 4)
    return PuzzleBatch(s.questions, s.answers, np.asarray(s.ratings, dtype=np.int32))


def generate_batch(
    task_name: str,
    difficulty: str | None,
    n: int,
    seed: int = 0,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PuzzleBatch:
    """Generate ``n`` puzzles of a task and tier across ``workers`` processes.

    Args:
        task_name: ``sudoku``, ``sudoku-mini`` or ``maze``.
        difficulty: a tier of the task (``None``: the task's default).
        n: how many puzzles.
        seed: the root seed; the output depends on it only.
        workers: processes to use (default: all cores); 1 runs in this process.
        on_progress: called with the number of puzzles finished after each chunk.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if workers is not None and workers < 1:
        # Not read as "all cores": a 0 or a negative count is more likely a slip than a wish.
        raise ValueError(f"workers must be at least 1 (None: all cores), got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    task = get_task(task_name)
    difficulty = task.check_difficulty(difficulty)
    sizes = [min(CHUNK, n - start) for start in range(0, n, CHUNK)]
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    workers = min(workers or os.cpu_count() or 1, len(sizes))
    parts: list[PuzzleBatch] = []
    if workers == 1:
        for size, child in zip(sizes, seeds, strict=True):
            parts.append(_chunk(task_name, difficulty, size, child))
            if on_progress:
                on_progress(size)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_chunk, task_name, difficulty, size, child)
                for size, child in zip(sizes, seeds, strict=True)
            ]
            for size, future in zip(sizes, futures, strict=True):
                parts.append(future.result())
                if on_progress:
                    on_progress(size)
    return PuzzleBatch.concat(parts)


def write_puzzle_csv(
    path: str | os.PathLike[str], task_name: str, batch: PuzzleBatch, source: str
) -> Path:
    """Write a batch in the task's public CSV format (``source,question,answer,rating``)."""
    path = Path(path)
    sources = [source] * len(batch)
    if task_name == "maze":
        from . import maze

        maze.write_csv(path, maze.MazeSet(batch.inputs, batch.targets, batch.ratings, sources))
    else:
        from . import sudoku

        sudoku.write_csv(
            path, sudoku.SudokuSet(batch.inputs, batch.targets, batch.ratings, sources)
        )
    return path
