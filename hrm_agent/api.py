"""``solve``: answer puzzles with a trained HRM in one call.

>>> from hrm_agent.api import solve
>>> answer = solve("1.34....2...4.1.", task="sudoku-mini", checkpoint="runs/mini/model")  # doctest: +SKIP

Shapes: B puzzles, S cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_agent.devices import (
    DEFAULT_INFERENCE_THREADS,
    check_batch_size,
    default_batch_size,
    set_inference_threads,
)
from hrm_agent.evaluate import HALT_MODES
from hrm_agent.reasoner import load_model
from hrm_agent.sampling import (
    MODEL_RULES,
    Diversity,
    check_samples,
    chosen,
    run_trajectories,
    select,
)
from hrm_env.envs.reasoner import check_threads
from hrm_env.puzzles.tasks import get_task

__all__ = ["solve"]


@lru_cache(maxsize=4)
def _cached_model(task: str, checkpoint: str | None, device: str) -> Any:
    model, _ = load_model(task, checkpoint, device)
    return model


def solve(
    puzzles: str | np.ndarray | Sequence[Any],
    task: str = "sudoku",
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    halt: str = "q",
    max_segments: int | None = None,
    batch_size: int | None = None,
    samples: int = 1,
    seed: int = 0,
    rule: str = "q",
    diversity: Diversity | None = None,
    threads: int | None = DEFAULT_INFERENCE_THREADS,
) -> np.ndarray:
    """Solve one puzzle or many with a trained HRM.

    Args:
        puzzles: one puzzle (a string such as ``"1.34...."``, an (S,) array or a grid-shaped
            array) or many (a sequence of those, or a (B, S) array). Every puzzle is validated
            by the task (wrong length, bad characters, clashing givens, ... raise).
        task: ``sudoku``, ``sudoku-mini`` or ``maze``.
        checkpoint: a checkpoint path stem; None uses the one shipped for the task. Loaded
            models are cached per (task, checkpoint, device).
        device: torch device to run on.
        halt: ``"q"`` answers at the first segment end where the Q head halts (or at the
            limit); ``"max"`` always runs all cycles.
        max_segments: segment limit (default: the checkpoint's).
        batch_size: puzzles per forward pass (each with ``samples`` rows; default: 16 rows
            on a CPU, 256 puzzles on a GPU).
        samples: trajectories per puzzle, run in one batch (``hrm_agent.sampling``); 1 is
            the plain model. Trajectory 0 is always the noise-free one.
        seed: seed of the trajectories' noise (same seed, same answers).
        rule: how one answer is picked from them, by the model alone: ``"q"`` (highest
            ``q_halt``), ``"first"`` (first to halt) or ``"vote"`` (most frequent answer).
        diversity: the noise (default ``sampling.DEFAULT_DIVERSITY``).
        threads: CPU threads of torch (set process-wide; only for a CPU model): an integer
            >= 1, 0 for torch's default (a thread per core), None to leave torch's setting.
            Default ``DEFAULT_INFERENCE_THREADS`` (see ``benchmarks/bench_threads.py``).

    Returns:
        uint8 answers: (S,) for one puzzle, (B, S) for many.

    Raises:
        ValueError: a malformed puzzle (naming which and what is wrong), an unknown task,
            halting or selection rule, a bad ``samples``, or a checkpoint for another task.
        FileNotFoundError: no such checkpoint.
    """
    if halt not in HALT_MODES:
        raise ValueError(f"halt must be one of {HALT_MODES}, got {halt!r}")
    if rule not in MODEL_RULES:
        raise ValueError(f"rule must be one of {MODEL_RULES}, got {rule!r}")
    samples = check_samples(samples)
    spec = get_task(task)
    if diversity is not None and diversity.guess_cycle and spec.blank_token is None:
        raise ValueError(f"guesses (guess_cycle) need a task with blank cells, not {task!r}")
    # Checked before the model loads, so a bad value costs nothing.
    check_threads(threads)
    check_batch_size(batch_size)
    model = _cached_model(spec.name, None if checkpoint is None else str(checkpoint), device)
    set_inference_threads(threads, model.device)
    grids, single = _parse(spec, puzzles)
    answers = np.zeros_like(grids)
    if batch_size is None:
        batch_size = default_batch_size(model.device, samples)
    for lo in range(0, len(grids), batch_size):
        chunk = grids[lo : lo + batch_size]
        tokens = torch.from_numpy(chunk.astype(np.int64)).to(model.device)
        trajectories = run_trajectories(
            model, tokens, samples, diversity, seed + lo, max_segments, halt == "q",
            spec.blank_token, spec.views,
        )  # fmt: skip
        answers[lo : lo + len(chunk)] = chosen(trajectories, select(trajectories, rule))
    return answers[0] if single else answers


def _parse(task: Any, puzzles: Any) -> tuple[np.ndarray, bool]:
    """(B, S) uint8 validated grids and whether a single puzzle was given."""
    if isinstance(puzzles, str):
        return task.parse_puzzle(puzzles)[None], True
    if not isinstance(puzzles, np.ndarray) and not any(isinstance(p, str) for p in puzzles):
        # Nested lists of numbers are read as an array, so [1, 0, 3, ...] is one puzzle.
        puzzles = np.asarray(puzzles)
    if isinstance(puzzles, np.ndarray):
        if puzzles.ndim == 1 or puzzles.shape == tuple(task.grid_shape):
            return task.parse_puzzle(puzzles)[None], True
        if puzzles.ndim == 2 and puzzles.shape[1] == task.seq_len:
            items: Sequence[Any] = list(puzzles)
        elif puzzles.ndim == 3 and puzzles.shape[1:] == tuple(task.grid_shape):
            items = list(puzzles)
        else:
            raise ValueError(
                f"puzzles of shape {puzzles.shape} fit neither one {task.name} puzzle "
                f"({task.seq_len} cells or {task.grid_shape}) nor a batch of them"
            )
    else:
        items = list(puzzles)
    if not items:
        raise ValueError("no puzzles given")
    grids = []
    for i, item in enumerate(items):
        try:
            grids.append(task.parse_puzzle(item))
        except ValueError as err:
            raise ValueError(f"puzzle {i}: {err}") from err
    return np.stack(grids).astype(np.uint8), False
