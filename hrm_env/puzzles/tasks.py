"""Tasks: one uniform face over the puzzle domains, for the model, the trainer and the envs.

A task turns a domain module (``sudoku``, ``maze``) into what learning code needs: batches of
``(inputs, targets)`` token grids, a held-out test set, a correctness check and a per-cell score.
Everything is numpy; grids are flat ``uint8`` rows whose values are the model tokens.

Shapes: B batch, S cells (81 for Sudoku, 16 for mini Sudoku, 900 for a 30x30 maze).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "PuzzleBatch",
    "Task",
    "SudokuTask",
    "MazeTask",
    "get_task",
    "trajectory_views",
    "TASK_NAMES",
]


@dataclass(frozen=True)
class PuzzleBatch:
    """A batch of puzzles with their reference answers.

    Attributes:
        inputs: (B, S) uint8 puzzle grids (the model input tokens).
        targets: (B, S) uint8 reference answers (the model output tokens).
        ratings: (B,) int32 difficulty rating per puzzle (Sudoku: solver guesses; maze: path length).
    """

    inputs: np.ndarray
    targets: np.ndarray
    ratings: np.ndarray

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape or self.inputs.ndim != 2:
            raise ValueError(
                f"inputs and targets must be (B, S) arrays of the same shape, got "
                f"{self.inputs.shape} and {self.targets.shape}"
            )
        if self.ratings.shape != (self.inputs.shape[0],):
            raise ValueError(
                f"ratings must have shape ({self.inputs.shape[0]},), got {self.ratings.shape}"
            )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: Any) -> PuzzleBatch:
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1)
        return PuzzleBatch(self.inputs[index], self.targets[index], self.ratings[index])

    @staticmethod
    def concat(batches: Sequence[PuzzleBatch]) -> PuzzleBatch:
        """Stack several batches into one."""
        return PuzzleBatch(
            np.concatenate([b.inputs for b in batches]),
            np.concatenate([b.targets for b in batches]),
            np.concatenate([b.ratings for b in batches]),
        )


class Task:
    """Base class of a puzzle task. Subclasses fill in the domain specifics.

    Attributes:
        name: the task name used by ``get_task``, the CLI and checkpoints.
        seq_len: S, cells per puzzle.
        vocab_size: number of token values (inputs and outputs share one vocabulary).
        grid_shape: (rows, cols) for drawing.
        difficulties: the tiers ``sample`` accepts.
        default_difficulty: the tier used when none is given.
        output_choices: for each input token value, the output tokens a cell holding it may
            take (``hrm train --output-mask`` builds a model that can only answer those), or
            None when any cell may take any token.
        wall_tokens: the input tokens of cells nothing passes through (a maze's walls), which
            ``hrm train --max-aggregation`` never lets a cell read; empty when the task has none.
        aux_targets: the auxiliary per-cell targets :meth:`aux_labels` can give (name ->
            number of classes); empty when the task has none.
        test_tiers: the tiers among ``difficulties`` drawn from held-out test puzzles: for
            evaluation and environments, never for training.
        test_sets: names of the bundled test sets ``test_set(name)`` gives besides the default
            one (``hrm eval --data NAME`` takes them).
        blank_token: the input token of a cell the puzzle leaves for the solver to fill with
            an answer token (Sudoku's blank, 0), so that a guessed answer can be written into
            the input as if it were given; None when the task has no such cells.
        views: (V, S) gather indices of the symmetries a trajectory may be shown its puzzle
            under (``hrm eval --views``; row 0 the identity), None when the task offers none.
            A view helps only a model that is not equivariant to it.
    """

    name: str
    seq_len: int
    vocab_size: int
    grid_shape: tuple[int, int]
    difficulties: tuple[str, ...]
    default_difficulty: str
    output_choices: tuple[tuple[int, ...], ...] | None = None
    wall_tokens: tuple[int, ...] = ()
    aux_targets: Mapping[str, int] = MappingProxyType({})
    test_tiers: tuple[str, ...] = ()
    test_sets: tuple[str, ...] = ()
    blank_token: int | None = None
    views: np.ndarray | None = None

    def check_difficulty(self, difficulty: str | None) -> str:
        """Return the tier to use, raising ``ValueError`` for an unknown one."""
        if difficulty is None:
            return self.default_difficulty
        if difficulty not in self.difficulties:
            raise ValueError(
                f"unknown difficulty {difficulty!r} for task {self.name!r}; "
                f"choose one of {', '.join(self.difficulties)}"
            )
        return difficulty

    def sample(
        self, rng: np.random.Generator, n: int, difficulty: str | None = None
    ) -> PuzzleBatch:
        """Draw ``n`` fresh (augmented) puzzles of a tier."""
        raise NotImplementedError

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply one random validity-preserving transform per row to puzzle and answer."""
        raise NotImplementedError

    def test_set(self, name: str | None = None) -> PuzzleBatch:
        """The held-out puzzles that evaluation and benchmarks use (never seen in training):
        the default set, or the bundled one called ``name`` (one of ``test_sets``)."""
        raise NotImplementedError

    def _check_test_set(self, name: str | None) -> None:
        if name is not None and name not in self.test_sets:
            known = ", ".join(self.test_sets) or "none besides the default"
            raise ValueError(f"unknown test set {name!r} for task {self.name!r}; known: {known}")

    def eval_data(self, data: str | os.PathLike[str] | None) -> PuzzleBatch:
        """What ``hrm eval --data`` means: None the default test set, a name of ``test_sets``
        that is not also an existing file that bundled set, anything else a puzzle file."""
        if data is None:
            return self.test_set()
        if str(data) in self.test_sets and not os.path.exists(data):
            return self.test_set(str(data))
        return self.load(data)

    def load(self, path: str | os.PathLike[str]) -> PuzzleBatch:
        """Read a user's puzzle file (CSV, or .txt for Sudoku); answers are solved if absent."""
        raise NotImplementedError

    def parse_puzzle(self, puzzle: Any) -> np.ndarray:
        """Turn a string or array into a validated (S,) uint8 grid; ``ValueError`` if malformed."""
        raise NotImplementedError

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        """Reference answers (B, S) for validated puzzles (B, S)."""
        raise NotImplementedError

    def is_correct(
        self, inputs: np.ndarray, predictions: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """(B,) bool: is each predicted answer a correct solution of its puzzle."""
        raise NotImplementedError

    def cell_mask(self, inputs: np.ndarray) -> np.ndarray:
        """(B, S) bool: the cells an answer is scored on."""
        return np.ones(inputs.shape, dtype=bool)

    def closest_targets(
        self, inputs: np.ndarray, targets: np.ndarray, logits: np.ndarray
    ) -> np.ndarray:
        """(B, S) the correct answer of each puzzle that a model's ``logits`` (B, S, V) favour.

        For a task with one answer per puzzle that is ``targets`` itself (the default here); a
        task whose puzzles can have several correct answers picks among them.
        """
        return targets

    def aux_labels(self, inputs: np.ndarray, kind: str) -> np.ndarray:
        """(B, S) int64 labels of the auxiliary target ``kind`` (one of ``aux_targets``), -1
        where a cell has none. Training may ask the model to predict them beside the answer.

        Raises:
            ValueError: for a kind this task does not have.
        """
        if kind not in self.aux_targets:
            known = ", ".join(self.aux_targets) or "none"
            raise ValueError(
                f"task {self.name!r} has no auxiliary target {kind!r}; it has: {known}"
            )
        return self._aux_labels(self._check_grids(inputs, "puzzles"), kind)

    def _aux_labels(self, inputs: np.ndarray, kind: str) -> np.ndarray:
        raise NotImplementedError

    def cell_accuracy(
        self, inputs: np.ndarray, predictions: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """(B,) float: the fraction of scored cells whose prediction equals the reference."""
        mask = self.cell_mask(inputs)
        hits = (predictions == targets) & mask
        return hits.sum(axis=1) / np.maximum(mask.sum(axis=1), 1)

    def _check_grids(self, grids: np.ndarray, what: str) -> np.ndarray:
        grids = np.asarray(grids)
        if grids.ndim == 1:
            grids = grids[None]
        if grids.ndim != 2 or grids.shape[1] != self.seq_len:
            raise ValueError(
                f"{what} must have shape (B, {self.seq_len}) for task {self.name!r}, got {grids.shape}"
            )
        return grids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seq_len={self.seq_len}, vocab_size={self.vocab_size})"


class SudokuTask(Task):
    """Sudoku: 9x9 (``sudoku``) or 4x4 (``sudoku-mini``). Correct = equals the unique solution.

    Cell accuracy is scored on the blank cells only: copying the givens is free.
    """

    def __init__(self, size: int = 9) -> None:
        from . import sudoku

        self._sudoku = sudoku
        self.size = size
        self.name = "sudoku" if size == 9 else "sudoku-mini"
        self.seq_len = size * size
        self.vocab_size = sudoku.VOCAB_SIZE
        self.grid_shape = (size, size)
        self.difficulties = (
            tuple(sudoku.TIERS) + tuple(sudoku.TEST_TIERS)
            if size == 9
            else tuple(sudoku.MINI_TIERS)
        )
        self.default_difficulty = "extreme" if size == 9 else self.difficulties[0]
        self.test_tiers = tuple(sudoku.TEST_TIERS) if size == 9 else ()
        # "extreme" names the default (hardest) bank, so it can be asked for by name too.
        self.test_sets = ("extreme", *sudoku.TEST_TIERS) if size == 9 else ()
        self.blank_token = 0

    def sample(
        self, rng: np.random.Generator, n: int, difficulty: str | None = None
    ) -> PuzzleBatch:
        difficulty = self.check_difficulty(difficulty)
        s = self._sudoku.generate(rng, difficulty, n, size=self.size)
        inputs, targets = self.augment(rng, s.questions, s.answers)
        return PuzzleBatch(inputs, targets, np.asarray(s.ratings, dtype=np.int32))

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._sudoku.augment(rng, inputs, targets)

    def test_set(self, name: str | None = None) -> PuzzleBatch:
        self._check_test_set(name)
        if name in self._sudoku.TEST_TIERS:
            s = self._sudoku.load_bank(name)
            return PuzzleBatch(s.questions, s.answers, np.asarray(s.ratings, dtype=np.int32))
        return _sudoku_test_set(self.size)

    def load(self, path: str | os.PathLike[str]) -> PuzzleBatch:
        # The task's size is required of the file: a file of the other size then fails at
        # once, naming both sizes, instead of being read, solved and refused as misshapen.
        s = self._sudoku.load(path, size=self.size)
        questions = self._check_grids(s.questions, f"puzzles in {os.fspath(path)}")
        answers = np.asarray(s.answers)
        missing = ~answers.any(axis=1) if answers.size else np.ones(len(questions), dtype=bool)
        if answers.size == 0:
            answers = np.zeros_like(questions)
        if missing.any():
            solved, counts, _ = self._sudoku.solve_batch(questions[missing])
            bad = np.flatnonzero(counts != 1)
            if bad.size:
                row = int(np.flatnonzero(missing)[bad[0]])
                what = "no solution" if counts[bad[0]] == 0 else "several solutions"
                raise ValueError(f"{os.fspath(path)}: puzzle {row + 1} has {what}")
            answers = answers.copy()
            answers[missing] = solved
        ratings = np.asarray(s.ratings, dtype=np.int32)
        if ratings.shape != (len(questions),):
            ratings = np.zeros(len(questions), dtype=np.int32)
        return PuzzleBatch(questions.astype(np.uint8), answers.astype(np.uint8), ratings)

    def parse_puzzle(self, puzzle: Any) -> np.ndarray:
        if isinstance(puzzle, str):
            grid = self._sudoku.parse(puzzle, size=self.size)
        else:
            grid = np.asarray(puzzle)
            if grid.shape not in ((self.seq_len,), (self.size, self.size)):
                raise ValueError(
                    f"a {self.size}x{self.size} Sudoku must have {self.seq_len} cells, got an array of shape {grid.shape}"
                )
            if not np.issubdtype(grid.dtype, np.integer):
                raise ValueError(f"Sudoku cells must be integers, got dtype {grid.dtype}")
            if grid.min() < 0 or grid.max() > self.size:
                raise ValueError(
                    f"Sudoku cells must be 0 (blank) or 1..{self.size}, got values {grid.min()}..{grid.max()}"
                )
            grid = grid.reshape(-1).astype(np.uint8)
        self._sudoku.validate(grid)
        return grid

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        inputs = self._check_grids(inputs, "puzzles")
        solutions, counts, _ = self._sudoku.solve_batch(inputs)
        if (counts != 1).any():
            row = int(np.flatnonzero(counts != 1)[0])
            raise ValueError(
                f"puzzle {row} has {'no' if counts[row] == 0 else 'several'} solution(s)"
            )
        return solutions

    def is_correct(
        self, inputs: np.ndarray, predictions: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        return np.all(np.asarray(predictions) == np.asarray(targets), axis=-1)

    def cell_mask(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs) == 0

    def check_rules(self, inputs: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """(B,) bool: each prediction is a complete grid that keeps its puzzle's givens and
        holds every digit once in each row, column and box. A check, never a search: it
        needs no solution, and for a puzzle with one solution it passes only that one."""
        inputs = self._check_grids(inputs, "puzzles")
        predictions = self._check_grids(predictions, "predictions").astype(np.int64)
        units = self._sudoku._units(self.size)  # (3n, n) cell indices
        keeps = np.all((inputs == 0) | (inputs == predictions), axis=1)
        digits = predictions[:, units]  # (B, 3n, n)
        in_range = np.all((predictions >= 1) & (predictions <= self.size), axis=1)
        # A unit holds each digit once exactly when its sorted digits are 1..n.
        full = np.all(np.sort(digits, axis=2) == np.arange(1, self.size + 1), axis=(1, 2))
        return keeps & in_range & full


class MazeTask(Task):
    """30x30 mazes. Correct = the predicted path is a valid shortest path from S to G."""

    def __init__(self) -> None:
        from . import maze

        self._maze = maze
        self.name = "maze"
        self.seq_len = maze.SEQ_LEN
        self.vocab_size = maze.VOCAB_SIZE
        self.grid_shape = (maze.SIDE, maze.SIDE)
        self.difficulties = tuple(maze.TIERS)
        self.default_difficulty = "hard"
        # Walls, S and G are what the input says; only an open cell has a choice, path or not.
        choices = [(v,) for v in range(maze.VOCAB_SIZE)]
        choices[maze.OPEN] = (maze.OPEN, maze.PATH)
        self.output_choices = tuple(choices)
        self.wall_tokens = (maze.WALL,)
        # The 8 symmetries of the square; the conv model's kernels are not symmetric.
        self.views = maze.dihedral_index()
        # distance3: moves to G mod 3 (all Lee's back-trace needs to walk a shortest path),
        # class 3 for a cell G cannot be reached from; on-path: on some shortest path or not;
        # slack: how much longer than the shortest the best S-G route through the cell is.
        self.aux_targets = MappingProxyType({"distance3": 4, "on-path": 2, "slack": 5})

    def sample(
        self, rng: np.random.Generator, n: int, difficulty: str | None = None
    ) -> PuzzleBatch:
        difficulty = self.check_difficulty(difficulty)
        m = self._maze.generate(rng, difficulty, n)
        inputs, targets = self.augment(rng, m.questions, m.answers)
        return PuzzleBatch(inputs, targets, np.asarray(m.ratings, dtype=np.int32))

    def augment(
        self, rng: np.random.Generator, inputs: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A random dihedral transform per maze, with the answer solved again afterwards.

        A maze often has several shortest paths, and the solver picks one by a fixed
        tie-break in the grid's own frame (up, left, right, down). A rotated answer breaks
        ties another way than the rotated maze's own solution, so without re-solving the same
        maze could come with different targets and the model would be taught to hedge
        between tied paths. Re-solving keeps every target the same function of its maze.
        """
        inputs, targets = self._maze.augment(rng, inputs, targets)
        answers, lengths = self._maze.solve_batch(inputs)  # (B, S), (B,); 1-D input: B = 1
        solved = (lengths >= 0)[:, None]
        return inputs, np.where(solved, answers, targets.reshape(answers.shape)).reshape(
            targets.shape
        )

    def test_set(self, name: str | None = None) -> PuzzleBatch:
        self._check_test_set(name)
        return _maze_test_set()

    def load(self, path: str | os.PathLike[str]) -> PuzzleBatch:
        m = self._maze.load(path)
        questions = self._check_grids(m.questions, f"mazes in {os.fspath(path)}")
        answers = np.asarray(m.answers)
        if answers.shape != questions.shape:
            answers = np.stack([self._maze.solve(q) for q in questions])
        ratings = np.asarray(m.ratings, dtype=np.int32)
        if ratings.shape != (len(questions),):
            ratings = np.array(
                [self._maze.shortest_path_length(q) for q in questions], dtype=np.int32
            )
        return PuzzleBatch(questions.astype(np.uint8), answers.astype(np.uint8), ratings)

    def parse_puzzle(self, puzzle: Any) -> np.ndarray:
        if isinstance(puzzle, str):
            grid = self._maze.parse(puzzle)
        else:
            grid = np.asarray(puzzle)
            if grid.shape not in ((self.seq_len,), self.grid_shape):
                raise ValueError(
                    f"a maze must have {self.seq_len} cells, got an array of shape {grid.shape}"
                )
            if not np.issubdtype(grid.dtype, np.integer):
                raise ValueError(f"maze cells must be integer tokens, got dtype {grid.dtype}")
            grid = grid.reshape(-1).astype(np.uint8)
        self._maze.validate(grid)
        return grid

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        inputs = self._check_grids(inputs, "mazes")
        return np.stack([self._maze.solve(q) for q in inputs])

    def closest_targets(
        self, inputs: np.ndarray, targets: np.ndarray, logits: np.ndarray
    ) -> np.ndarray:
        """The shortest path with the highest summed log-odds of ``o`` over ``' '``.

        Nearly every generated maze has tied shortest paths, and any of them is correct. The
        path the model already leans to is the one it is cheapest to be taught; a model that
        marks a shortest path exactly gets its own answer as the target.
        """
        m = self._maze
        scores = logits[..., m.PATH] - logits[..., m.OPEN]
        answers, lengths = m.closest_shortest_paths(inputs, scores)
        return np.where((lengths >= 0)[:, None], answers, targets)

    def _aux_labels(self, inputs: np.ndarray, kind: str) -> np.ndarray:
        from_s, to_g = self._maze.endpoint_distances(inputs)
        walls = inputs == self._maze.WALL
        if kind == "distance3":
            labels = np.where(to_g >= 0, to_g % 3, 3)
        else:
            length = to_g[np.arange(len(inputs)), np.argmax(inputs == self._maze.START, axis=1)]
            reached = (from_s >= 0) & (to_g >= 0)
            slack = np.where(reached, from_s + to_g - length[:, None], -1)
            if kind == "on-path":
                labels = (slack == 0).astype(np.int64)
            else:
                # On a grid every route from S to G has the parity of the shortest, so the
                # slack is even: classes 0, 2, 4 and >= 6 moves longer, then unreachable.
                labels = np.where(reached, np.minimum(slack // 2, 3), 4)
        return np.where(walls, -1, labels).astype(np.int64)

    def is_correct(
        self, inputs: np.ndarray, predictions: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        inputs = self._check_grids(inputs, "mazes")
        return np.asarray(
            self._maze.check_batch(inputs, self._check_grids(predictions, "predictions")),
            dtype=bool,
        )

    def cell_mask(self, inputs: np.ndarray) -> np.ndarray:
        # Walls are given and never change; score the cells where a path could run.
        return np.asarray(inputs) != self._maze.WALL

    def check_rules(self, inputs: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """(B,) bool: each prediction keeps its maze and marks one simple path from S to G.

        Walls, S and G stay as the maze has them, only open cells are marked, S and G touch
        one marked neighbour each (or each other), every marked cell two of the path's
        cells, and the marks are one piece. A check, never a search: it reads the marks
        only and does not know whether a shorter path exists (see :meth:`answer_cost`).
        """
        m = self._maze
        inputs = self._check_grids(inputs, "mazes")
        predictions = self._check_grids(predictions, "predictions")
        marked = predictions == m.PATH
        ends = (inputs == m.START) | (inputs == m.GOAL)
        keeps = np.all(np.where(inputs == m.OPEN, marked | (predictions == m.OPEN),
                                predictions == inputs), axis=1)  # fmt: skip
        on = (marked | ends).reshape(-1, *self.grid_shape)
        padded = np.pad(on, ((0, 0), (1, 1), (1, 1)))
        degree = (
            padded[:, :-2, 1:-1].astype(np.int8) + padded[:, 2:, 1:-1]
            + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
        ).reshape(len(inputs), -1)  # fmt: skip
        degrees = np.all(np.where(ends, degree == 1, ~marked | (degree == 2)), axis=1)
        # One piece: walking the marks alone, G is as many moves from S as there are marks
        # plus one (a path through every mark; any other piece would be a loop left over).
        only = np.where(marked, m.OPEN, np.where(ends, inputs, m.WALL)).astype(np.uint8)
        _, to_g = m.endpoint_distances(only)
        steps = to_g[np.arange(len(inputs)), np.argmax(inputs == m.START, axis=1)]
        return keeps & degrees & (steps == marked.sum(axis=1) + 1)

    def answer_cost(self, inputs: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """(B,) the marked cells of each answer: of two answers that pass
        :meth:`check_rules`, the one with fewer marks is the shorter path."""
        return np.count_nonzero(
            self._check_grids(predictions, "predictions") == self._maze.PATH, axis=1
        )


def trajectory_views(views: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The gathers into and out of the view each of a puzzle's K trajectories sees.

    Trajectory k sees view ``k mod V`` of a task's V views (``Task.views``, view 0 the
    identity), so trajectory 0 sees the puzzle as it is.

    Returns:
        ``(forward, backward)``, (K, S) int64: trajectory k's view of a flat grid ``g`` is
        ``g[forward[k]]``, and an answer ``a`` in that view, back in the puzzle's frame, is
        ``a[backward[k]]``.

    Raises:
        ValueError: if ``views`` is not a (V, S) array of permutations of the cells.
    """
    views = np.asarray(views, dtype=np.int64)
    if views.ndim != 2 or not (np.sort(views, axis=1) == np.arange(views.shape[1])).all():
        raise ValueError(f"views must be (V, S) permutations of the cells, got {views.shape}")
    forward = views[np.arange(samples) % len(views)]
    return forward, np.argsort(forward, axis=1)


@lru_cache(maxsize=2)
def _sudoku_test_set(size: int) -> PuzzleBatch:
    from . import sudoku

    if size == 9:
        s = sudoku.load_bank("test")
    else:
        # 4x4 grids are few (288 solutions), so a mini test set is generated with a fixed seed;
        # it measures rule-following rather than memorisation only with a fixed small train set.
        s = sudoku.generate(
            np.random.default_rng(MINI_TEST_SEED), sudoku.MINI_TIERS[0], 512, size=4
        )
    return PuzzleBatch(s.questions, s.answers, np.asarray(s.ratings, dtype=np.int32))


MINI_TEST_SEED = 4_4_2025


@lru_cache(maxsize=1)
def _maze_test_set() -> PuzzleBatch:
    # A bundled bank (scripts/build_maze_test_bank.py) rather than a regeneration, so the
    # held-out mazes stay fixed even when the generator changes.
    from importlib.resources import files

    with files("hrm_env").joinpath("data", "maze_test.npz").open("rb") as f:
        bank = np.load(f)
        return PuzzleBatch(
            bank["questions"].astype(np.uint8),
            bank["answers"].astype(np.uint8),
            bank["ratings"].astype(np.int32),
        )


_FACTORIES = {
    "sudoku": lambda: SudokuTask(9),
    "sudoku-mini": lambda: SudokuTask(4),
    "maze": MazeTask,
}
TASK_NAMES: tuple[str, ...] = tuple(_FACTORIES)


@cache
def get_task(name: str) -> Task:
    """Return the task called ``name`` (``sudoku``, ``sudoku-mini`` or ``maze``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}") from None
    return factory()
