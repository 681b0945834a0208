"""The reasoner protocol: what an environment needs from a model, in numpy.

The environments never import torch. They drive a *reasoner*: something that turns a batch of
puzzles into a recurrent state (``reset``) and advances that state by one HRM high-level cycle,
reading out an answer and the Q head after each (``cycle``). ``hrm_agent.TorchReasoner`` wraps
the real model; ``ScriptedReasoner`` here plays a fixed script, for tests and for studying
halting policies without a model.

Shapes: B batch (sub-environments), S cells, V vocabulary, D latent width, C script length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_INFERENCE_THREADS",
    "CycleOutput",
    "Reasoner",
    "ScriptedReasoner",
    "ScriptedState",
    "check_threads",
    "model_cycle_limit",
]

DEFAULT_INFERENCE_THREADS = 1
"""CPU threads torch runs inference with, unless told otherwise: the one default of ``hrm
eval``, :func:`hrm_agent.solve`, the envs' own models and the examples. A cycle of the shipped
models is small, and torch's default (a thread per core) can make it many times slower when
another process keeps a core busy; ``benchmarks/bench_threads.py`` measures both settings,
idle and busy, and this is where its verdict goes."""


def check_threads(threads: Any, name: str = "threads") -> int | None:
    """``threads`` if it is a valid thread setting, else a ``ValueError`` naming ``name``.

    A setting is an integer >= 1 (that many torch threads), 0 (torch's own default, a thread
    per core) or None (leave torch's setting as it is).
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(
            f"{name} must be an integer >= 1, 0 (torch's default: a thread per core) or None "
            f"(leave torch's setting), got {threads!r}"
        )
    return int(threads)


class CycleOutput(NamedTuple):
    """What one high-level cycle reads out, for every row of the batch.

    Attributes:
        logits: (B, S, V) float32 answer logits per cell.
        q: (B, 2) float32 Q-head logits, column 0 = halt, column 1 = continue.
        latent: (B, D) float32 high-level state z_H mean-pooled over cells.
    """

    logits: np.ndarray
    q: np.ndarray
    latent: np.ndarray


@runtime_checkable
class Reasoner(Protocol):
    """A recurrent puzzle solver driven one high-level cycle at a time (numpy in, numpy out).

    Attributes:
        task: the task it solves: ``"sudoku"``, ``"sudoku-mini"`` or ``"maze"``.
        seq_len: S, cells per puzzle.
        vocab_size: V, token values per cell.
        latent_size: D, width of ``CycleOutput.latent``.
    """

    task: str
    seq_len: int
    vocab_size: int
    latent_size: int

    def reset(self, inputs: np.ndarray, state: Any = None, mask: np.ndarray | None = None) -> Any:
        """Fresh state for (B, S) uint8 ``inputs``.

        With ``state`` and a (B,) bool ``mask``, only the masked rows are reinitialised (their
        puzzles taken from the same rows of ``inputs``); the other rows keep their state.
        """
        ...

    def cycle(self, state: Any) -> tuple[Any, CycleOutput]:
        """Run one high-level cycle for every row, then read out answer, Q values and latent."""
        ...


def model_cycle_limit(reasoner: Any, default: int = 16) -> int:
    """The cycles a reasoner's model was trained to run (its config's ``max_cycles``, N x
    max_segments), else ``default`` (a reasoner without a model config, e.g. a script)."""
    config = getattr(getattr(reasoner, "model", None), "config", None)
    limit = getattr(config, "max_cycles", None)
    return default if limit is None else int(limit)


# A script entry is either a fixed array replayed by cycle number, or a function of the
# puzzles and of each row's cycle count (1 on the first cycle after a reset).
ScriptFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ScriptedState:
    """The state of a ``ScriptedReasoner``: the puzzles and how far each row has got.

    Attributes:
        inputs: (B, S) uint8 puzzles.
        targets: (B, S) uint8 reference answers (needed by the default script only, else None).
        cycles: (B,) int64 cycles run since each row's reset.
    """

    inputs: np.ndarray
    targets: np.ndarray | None
    cycles: np.ndarray


def _get_task(name: str) -> Any:
    # Looked up by name on use (get_task caches) rather than kept as an attribute, so that a
    # reasoner deep-copies cleanly, as gym.make does with its keyword arguments.
    from hrm_env.puzzles.tasks import get_task

    return get_task(name)


class ScriptedReasoner:
    """A reasoner that plays a script instead of thinking: deterministic, instant, model-free.

    By default it *pretends to solve*: on cycle ``c`` its answer is the puzzle with the first
    ``c / solve_at`` of the cells that must change filled in from the reference solution (in
    row-major order), so the answer becomes fully correct on cycle ``solve_at`` and stays so.
    Settled cells (givens and filled ones) are confident (0.95), the others not (0.4). Its Q head says continue before
    ``solve_at`` and halt from then on. With ``solve_at=None`` it never finishes: it fills all
    but one of the cells and its Q head keeps saying continue.

    Any part can be replaced by a script: ``answers`` and ``q`` take an array replayed by cycle
    number (entry ``c - 1`` on cycle ``c``, the last entry once the script runs out) or a
    function ``f(inputs (B, S), cycles (B,)) -> array`` of the puzzles and per-row cycle counts.

    Args:
        task: task name (``"sudoku"``, ``"sudoku-mini"``, ``"maze"``).
        answers: None (pretend to solve), a (C, S) array of answers, or a function returning
            (B, S) answers.
        q: None (follow ``solve_at``), a (C, 2) array of (halt, continue) logits, or a function
            returning (B, 2).
        confidence: None (0.95 on settled cells, 0.4 elsewhere; 0.95 for scripted answers), a float in (1/V, 1), or a (C,)
            array per cycle: the max softmax probability the logits encode in every cell.
        solve_at: the cycle on which the default script's answer becomes correct (>= 1), or
            None for never.
        latent_size: D, the width of the fake latent (cycle count, fraction filled, zeros).

    Example:
        >>> r = ScriptedReasoner("sudoku-mini", solve_at=2)
        >>> state = r.reset(np.zeros((1, 16), dtype=np.uint8))  # doctest: +SKIP
    """

    def __init__(
        self,
        task: str,
        *,
        answers: np.ndarray | ScriptFn | None = None,
        q: np.ndarray | ScriptFn | None = None,
        confidence: float | np.ndarray | None = None,
        solve_at: int | None = 3,
        latent_size: int = 8,
    ) -> None:
        spec = _get_task(task)
        self.task = spec.name
        self.seq_len = spec.seq_len
        self.vocab_size = spec.vocab_size
        if latent_size < 2:
            raise ValueError(f"latent_size must be at least 2, got {latent_size}")
        self.latent_size = int(latent_size)
        if solve_at is not None and solve_at < 1:
            raise ValueError(f"solve_at must be a cycle number >= 1 or None, got {solve_at}")
        self.solve_at = solve_at
        self._answers = self._check_script(answers, (self.seq_len,), "answers")
        self._q = self._check_script(q, (2,), "q")
        if confidence is not None:
            conf = np.atleast_1d(np.asarray(confidence, dtype=np.float64))
            if conf.ndim != 1 or np.any(conf <= 1.0 / self.vocab_size) or np.any(conf >= 1.0):
                raise ValueError(
                    f"confidence must lie in (1/{self.vocab_size}, 1), got {confidence!r}"
                )
            confidence = conf
        self._confidence = confidence

    @staticmethod
    def _check_script(
        script: np.ndarray | ScriptFn | None, row_shape: tuple[int, ...], name: str
    ) -> np.ndarray | ScriptFn | None:
        if script is None or callable(script):
            return script
        arr = np.asarray(script)
        if arr.ndim != 1 + len(row_shape) or arr.shape[1:] != row_shape or len(arr) == 0:
            raise ValueError(
                f"{name} must be a (C, {', '.join(map(str, row_shape))}) array with C >= 1, "
                f"got shape {arr.shape}"
            )
        return arr

    @staticmethod
    def _play(script: np.ndarray | ScriptFn, inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        if callable(script):
            return np.asarray(script(inputs, cycles))
        step = np.minimum(cycles, len(script)) - 1  # (B,) row of the script per puzzle
        return script[step]

    def reset(
        self, inputs: np.ndarray, state: ScriptedState | None = None, mask: np.ndarray | None = None
    ) -> ScriptedState:
        """Start the given puzzles at cycle 0 (only the masked rows when a mask is given)."""
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.seq_len:
            raise ValueError(
                f"inputs must have shape (B, {self.seq_len}) for task {self.task!r}, "
                f"got {inputs.shape}"
            )
        inputs = inputs.astype(np.uint8)
        need_targets = self._answers is None
        if state is None or mask is None:
            targets = _get_task(self.task).solve(inputs) if need_targets else None
            return ScriptedState(inputs, targets, np.zeros(len(inputs), dtype=np.int64))
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(state.inputs),) or len(inputs) != len(state.inputs):
            raise ValueError(
                f"mask must have shape ({len(state.inputs)},) and inputs {len(state.inputs)} rows, "
                f"got {mask.shape} and {len(inputs)}"
            )
        new_inputs = state.inputs.copy()
        new_inputs[mask] = inputs[mask]
        cycles = state.cycles.copy()
        cycles[mask] = 0
        targets = None
        if need_targets:
            assert state.targets is not None
            targets = state.targets.copy()
            if mask.any():
                targets[mask] = _get_task(self.task).solve(inputs[mask])
        return ScriptedState(new_inputs, targets, cycles)

    def cycle(self, state: ScriptedState) -> tuple[ScriptedState, CycleOutput]:
        """Advance every row by one cycle and read out the scripted answer and Q values."""
        cycles = state.cycles + 1
        inputs = state.inputs
        B, S = inputs.shape
        if self._answers is None:
            answer, filled_frac, filled = self._pretend(inputs, state.targets, cycles)
        else:
            answer = self._play(self._answers, inputs, cycles).astype(np.int64)
            filled = np.ones(answer.shape, dtype=bool)  # a replayed answer is all "sure"
            filled_frac = (answer != inputs).mean(axis=1)
        if answer.shape != (B, S):
            raise ValueError(f"the answer script gave shape {answer.shape}, expected {(B, S)}")
        if answer.min() < 0 or answer.max() >= self.vocab_size:
            raise ValueError(
                f"the answer script gave tokens outside 0..{self.vocab_size - 1} "
                f"({answer.min()}..{answer.max()})"
            )

        if self._q is not None:
            q = self._play(self._q, inputs, cycles).astype(np.float32)
        elif self.solve_at is None:
            q = np.tile(np.array([-3.0, 0.0], dtype=np.float32), (B, 1))
        else:
            # Halt logit crosses zero exactly on the cycle the answer becomes correct.
            q_halt = 2.0 * (cycles - self.solve_at) + 1.0
            q = np.stack([q_halt, np.zeros(B)], axis=1).astype(np.float32)
        if q.shape != (B, 2):
            raise ValueError(f"the q script gave shape {q.shape}, expected {(B, 2)}")

        if self._confidence is None:
            conf = np.where(filled, 0.95, 0.4)  # (B, S)
        else:
            per_cycle = self._confidence[np.minimum(cycles, len(self._confidence)) - 1]
            conf = np.broadcast_to(per_cycle[:, None], (B, S))
        logits = self._logits(answer, conf)

        latent = np.zeros((B, self.latent_size), dtype=np.float32)
        latent[:, 0] = cycles
        latent[:, 1] = filled_frac
        new_state = ScriptedState(inputs, state.targets, cycles)
        return new_state, CycleOutput(logits, q, latent)

    def _pretend(
        self, inputs: np.ndarray, targets: np.ndarray | None, cycles: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert targets is not None
        todo = targets != inputs  # (B, S) cells the answer must change
        n_todo = todo.sum(axis=1)
        if self.solve_at is None:
            n_fill = np.maximum(n_todo - 1, 0)
        else:
            # Progress in proportion to the cycles, but never complete before solve_at.
            partial = np.minimum(n_todo * cycles // self.solve_at, np.maximum(n_todo - 1, 0))
            n_fill = np.where(cycles >= self.solve_at, n_todo, partial)
        order = np.cumsum(todo, axis=1)  # 1-based rank of each to-do cell in row-major order
        filled = todo & (order <= n_fill[:, None])
        answer = np.where(filled, targets, inputs).astype(np.int64)
        frac = n_fill / np.maximum(n_todo, 1)
        return answer, frac, filled | ~todo

    def _logits(self, answer: np.ndarray, conf: np.ndarray) -> np.ndarray:
        # Logit L on the answer token and 0 elsewhere gives max softmax prob
        # e^L / (e^L + V - 1) = conf, so L = log(conf (V - 1) / (1 - conf)).
        V = self.vocab_size
        big = np.log(conf * (V - 1) / (1.0 - conf)).astype(np.float32)  # (B, S)
        logits = np.zeros((*answer.shape, V), dtype=np.float32)
        np.put_along_axis(logits, answer[..., None], big[..., None], axis=-1)
        return logits
