"""Sudoku: grids, file formats, validation, an exact solver and rater, a generator, augmentations.

Two sizes share one code path: the classic 9x9 grid (boxes 3x3, digits 1..9) and the 4x4
"mini" grid (boxes 2x2, digits 1..4) for fast CPU experiments. A grid is a flat row-major
``np.ndarray`` of ``uint8``, 0 for a blank; the stored value is the model token.

Shapes: N or B puzzles, S cells (81, or 16 for mini), n digits per unit (9 or 4).

The solver is a depth-first search with naked- and hidden-singles propagation that branches on
a cell with the fewest candidates (ties: the most open peers, then the first), digits lowest
first (numba kernels in ``_sudoku_kernels``). It counts solutions up to 2, and its guess count is the difficulty
*rating*: 0 means singles alone solve the puzzle. Because uniqueness is checked, every branch of
a unique puzzle is explored, so the rating does not depend on the digit labels (it does depend
on the orientation: an augmented puzzle is re-rated).

Tiers (9x9), from ratings measured on the generator's output and on the bundled banks:

========  ===================================  =================================================
tier      rating                               source
========  ===================================  =================================================
easy      0                                    random grid, dug while singles still solve it
medium    1 .. ``MEDIUM_MAX_RATING`` (3)       random grid dug to a minimal unique puzzle
hard      4 .. ``HARD_MAX_RATING`` (39)        same, kept when the rating falls in range
extreme   >= ``EXTREME_MIN_RATING`` (40)       a train-bank puzzle (public hardest collections)
                                               under a fresh random augmentation
========  ===================================  =================================================

One more 9x9 tier is a held-out *test* tier (``TEST_TIERS``), not a rating range:
``extreme-mix``, a puzzle of the ``extreme-mix`` bank (1,000 puzzles drawn at random from the
four public collections, the kind of mix the paper's Sudoku-Extreme test set is) under a fresh
random augmentation. Its puzzles rate anywhere from 0 up (median 48, half need 40 or more
guesses). Being test puzzles, they are for evaluation and environments, never for training.

Minimal puzzles dug from random grids have ratings 0 (42%), 1..3 (42%), 4..39 (16%) and
almost never 40 or more (3 in 20,000), while 99% of the forum "hardest 11+" collection rates
40 or more (median 96): that is why the extreme tier comes from the bank.

Every 4x4 puzzle that has a unique solution is solved by singles alone (rating 0; checked
exhaustively over every 4x4 grid and every subset of givens), so mini tiers count givens
instead: ``hard`` up to 5 givens (a unique 4x4 puzzle has at least 4), ``medium`` 6..7,
``easy`` 8 or more. The generator makes 4..5, 6..7 and 8..10 givens (``MINI_TIER_GIVENS``).

The bundled banks (``load_bank``, built by ``scripts/build_sudoku_banks.py`` from the public
17-clue, magictour top1465 and forum hardest collections): ``train`` 96,891 puzzles (rating
median 25, 47,299 of them extreme), ``test`` the 1,501 hardest (ratings 73..742, median 253),
``extreme-mix`` 1,000 drawn at random (ratings 0..457, median 48). Both test banks are split
from ``train`` by source puzzle (``signature``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from hrm_env.fileio import atomic_open
from hrm_env.puzzles._files import at_line, open_text
from hrm_env.puzzles._tokens import checked_tokens

__all__ = [
    "VOCAB_SIZE",
    "SIZES",
    "TIERS",
    "TEST_TIERS",
    "MINI_TIERS",
    "MEDIUM_MAX_RATING",
    "HARD_MAX_RATING",
    "EXTREME_MIN_RATING",
    "MINI_TIER_GIVENS",
    "SudokuSet",
    "SolveResult",
    "Transform",
    "parse",
    "format",
    "read_csv",
    "write_csv",
    "read_txt",
    "load",
    "validate",
    "solve",
    "solve_batch",
    "rate",
    "tier_of",
    "mini_tier_of",
    "generate",
    "random_transform",
    "apply_transform",
    "invert_transform",
    "augment",
    "signature",
    "encode",
    "decode",
    "load_bank",
]

#: Token vocabulary shared by both sizes: 0 blank, 1..9 digits.
VOCAB_SIZE = 10
#: Supported grid sides.
SIZES = (9, 4)
#: 9x9 tiers, easiest first.
TIERS = ("easy", "medium", "hard", "extreme")
#: 9x9 tiers drawn from a held-out test bank (augmented): for evaluation, never for training.
TEST_TIERS = ("extreme-mix",)
#: 4x4 tiers; the first is the default (the hardest, minimal puzzles, like 9x9's ``extreme``).
MINI_TIERS = ("hard", "medium", "easy")
#: Highest rating of the ``medium`` tier (``easy`` is exactly 0).
MEDIUM_MAX_RATING = 3
#: Highest rating of the ``hard`` tier.
HARD_MAX_RATING = 39
#: Lowest rating of the ``extreme`` tier.
EXTREME_MIN_RATING = HARD_MAX_RATING + 1
#: Givens (inclusive range) of the generated puzzles of each 4x4 tier; ``mini_tier_of`` also
#: counts fewer givens as ``hard`` and more as ``easy``.
MINI_TIER_GIVENS = {"hard": (4, 5), "medium": (6, 7), "easy": (8, 10)}

CSV_HEADER = ("source", "question", "answer", "rating")


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SudokuSet:
    """Puzzles with their solutions, ratings and where each came from.

    Attributes:
        questions: (N, S) uint8 puzzles, 0 = blank.
        answers: (N, S) uint8 solutions.
        ratings: (N,) int32 solver guesses (see ``rate``).
        sources: N names of the collection or generator each puzzle came from.
    """

    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        q, a = np.asarray(self.questions), np.asarray(self.answers)
        if q.ndim != 2 or q.shape != a.shape:
            raise ValueError(
                f"questions and answers must be (N, S) arrays of one shape, got {q.shape} and {a.shape}"
            )
        if q.shape[1] not in (81, 16):
            raise ValueError(f"a Sudoku has 81 or 16 cells, got {q.shape[1]}")
        if np.shape(self.ratings) != (q.shape[0],) or len(self.sources) != q.shape[0]:
            raise ValueError(
                f"ratings and sources must have one entry per puzzle ({q.shape[0]}), got "
                f"{np.shape(self.ratings)} and {len(self.sources)}"
            )

    def __len__(self) -> int:
        return int(self.questions.shape[0])

    @property
    def size(self) -> int:
        """Grid side: 9 or 4."""
        return _side(self.questions.shape[1])


class SolveResult(NamedTuple):
    """What the solver found for one puzzle.

    Attributes:
        solution: (S,) uint8, the first solution found, or None when there is none.
        n_solutions: 0, 1 or 2 (the count stops at 2: "several").
        guesses: the search's guess count; the rating when the solution is unique.
    """

    solution: np.ndarray | None
    n_solutions: int
    guesses: int


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _side(cells: int) -> int:
    if cells == 81:
        return 9
    if cells == 16:
        return 4
    raise ValueError(f"a Sudoku must have 81 cells (9x9) or 16 (4x4 mini), got {cells}")


def _check_size(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"size must be 9 or 4 (mini), got {size!r}")
    return size


def _file_size(first: str, size: int | None, where: str) -> int:
    """The side of a file's grids: ``size`` if given, else inferred from its ``first`` puzzle.

    Raises:
        ValueError: at ``where``, when the first puzzle has the other size's cell count (a
            file of 4x4 puzzles read as 9x9 or the reverse), naming both sizes: parsed as the
            wrong size, such a file would fail with a confusing length or solver error.
    """
    found = _side(len(first)) if len(first) in (81, 16) else None
    if size is None:
        return found or 9
    size = _check_size(size)
    if found is not None and found != size:
        raise ValueError(
            f"{where}: the file holds {found}x{found} ({found * found}-cell) Sudoku puzzles, "
            f"but {size}x{size} puzzles ({size * size} cells) are expected"
        )
    return size


def _where(cell: int, n: int) -> str:
    return f"row {cell // n + 1}, column {cell % n + 1}"


@cache
def _units(size: int) -> np.ndarray:
    """(3n, n) int32 cell indices of the rows, then columns, then boxes."""
    b = int(round(size**0.5))
    rows = [[r * size + c for c in range(size)] for r in range(size)]
    cols = [[r * size + c for r in range(size)] for c in range(size)]
    boxes = [
        [(br * b + i) * size + bc * b + j for i in range(b) for j in range(b)]
        for br in range(b)
        for bc in range(b)
    ]
    return np.array(rows + cols + boxes, dtype=np.int32)


@cache
def _tables(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' lookup tables: peers (S, P), units (3n, n), popcount (2**n,)."""
    units = _units(size)
    S = size * size
    peers = []
    for c in range(S):
        mates = set(units[(units == c).any(axis=1)].ravel().tolist())
        mates.discard(c)
        peers.append(sorted(mates))
    popcount = np.array([bin(m).count("1") for m in range(1 << size)], dtype=np.int32)
    return np.array(peers, dtype=np.int32), units, popcount


@cache
def _kernels() -> ModuleType:
    # numba is imported on first use only, so parsing and formatting stay light.
    from . import _sudoku_kernels

    return _sudoku_kernels


def _unit_name(u: int, size: int) -> str:
    kind = ("row", "column", "box")[u // size]
    return f"{kind} {u % size + 1}"


def _first_clash(grid: np.ndarray, size: int) -> tuple[int, str] | None:
    """(digit, unit name) of the first digit that appears twice in a unit, if any."""
    units = _units(size)
    for u, cells in enumerate(units):
        values = grid[cells]
        values = values[values > 0]
        counts = np.bincount(values, minlength=size + 1)
        if counts.max(initial=0) > 1:
            return int(np.argmax(counts > 1)), _unit_name(u, size)
    return None


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def parse(text: str, size: int | None = None) -> np.ndarray:
    """Read one puzzle from its row-major string (``.`` or ``0`` for blanks).

    Whitespace is ignored, so a grid written over several lines parses too.

    Args:
        text: 81 characters (or 16 for mini).
        size: 9 or 4 to insist on a size; None infers it from the length.

    Returns:
        (S,) uint8 grid.

    Raises:
        ValueError: wrong length (stating it) or a bad character (stating which and where).
    """
    if not isinstance(text, str):
        raise ValueError(f"a Sudoku puzzle string must be a str, got {type(text).__name__}")
    cells = "".join(text.split())
    if size is None:
        if len(cells) not in (81, 16):
            raise ValueError(
                f"a Sudoku must have 81 cells (9x9) or 16 (4x4 mini), got {len(cells)} characters"
            )
        size = _side(len(cells))
    elif len(cells) != _check_size(size) ** 2:
        raise ValueError(
            f"a {size}x{size} Sudoku must have {size * size} cells, got {len(cells)} characters"
        )
    return _decode_chars(cells, size)


def _decode_chars(cells: str, size: int, what: str = "puzzle") -> np.ndarray:
    # A non-ASCII character becomes one "?" byte, so byte positions stay character positions.
    raw = np.frombuffer(cells.encode("ascii", errors="replace"), dtype=np.uint8)
    values = _char_table(size)[raw]
    bad = np.flatnonzero(values == 255)
    if bad.size == 0:
        return values
    pos = int(bad[0])
    raise ValueError(
        f"bad character {cells[pos]!r} in {what} at position {pos + 1} "
        f"({_where(pos, size)}); use 1-{size} for digits and '.' or '0' for blanks"
    )


@cache
def _char_table(size: int) -> np.ndarray:
    """(256,) uint8: byte -> cell value, 255 for a byte that is not allowed."""
    table = np.full(256, 255, dtype=np.uint8)
    table[ord(".")] = table[ord("0")] = 0
    for d in range(1, size + 1):
        table[ord("0") + d] = d
    return table


def format(grid: np.ndarray, blank: str = ".") -> str:
    """Write a grid as its row-major string, ``blank`` for empty cells."""
    grid = np.asarray(grid).reshape(-1)
    size = _side(grid.size)
    if grid.min(initial=0) < 0 or grid.max(initial=0) > size:
        raise ValueError(f"grid values must be 0..{size}, got {grid.min()}..{grid.max()}")
    if len(blank) != 1:
        raise ValueError(f"blank must be one character, got {blank!r}")
    return "".join(blank if v == 0 else chr(ord("0") + int(v)) for v in grid)


def _as_grid(obj: Any, what: str = "puzzle", size: int | None = None) -> np.ndarray:
    """A validated-shape (S,) uint8 grid from a string or an array-like."""
    if isinstance(obj, str):
        if what == "puzzle":
            return parse(obj, size)
        cells = "".join(obj.split())
        side = size if size is not None else _side(len(cells))
        if len(cells) != side * side:
            raise ValueError(
                f"a {side}x{side} Sudoku {what} must have {side * side} cells, got {len(cells)} characters"
            )
        return _decode_chars(cells, side, what)
    grid = np.asarray(obj)
    if grid.ndim == 2 and grid.shape[0] == grid.shape[1]:
        grid = grid.reshape(-1)
    if grid.ndim != 1:
        raise ValueError(
            f"a Sudoku {what} must be a flat grid of 81 or 16 cells, got shape {grid.shape}"
        )
    side = _side(grid.size) if size is None else _check_size(size)
    if grid.size != side * side:
        raise ValueError(
            f"a {side}x{side} Sudoku {what} must have {side * side} cells, got {grid.size}"
        )
    if grid.size and not np.issubdtype(grid.dtype, np.integer):
        raise ValueError(f"Sudoku cells must be integers, got dtype {grid.dtype}")
    bad = np.flatnonzero((grid < 0) | (grid > side))
    if bad.size:
        pos = int(bad[0])
        raise ValueError(
            f"bad value {int(grid[pos])} in {what} at {_where(pos, side)}; cells must be 0..{side}"
        )
    return grid.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------


def solve_batch(puzzles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve many puzzles of one size, counting solutions up to 2.

    Args:
        puzzles: (B, S) integer grids, 0 = blank.

    Returns:
        solutions (B, S) uint8 (the first solution found, zeros where there is none),
        n_solutions (B,) int64 in {0, 1, 2}, guesses (B,) int64.

    Raises:
        ValueError: wrong shape or a value outside 0..n.
    """
    puzzles = np.asarray(puzzles)
    if puzzles.ndim != 2:
        raise ValueError(f"puzzles must be a (B, S) array, got shape {puzzles.shape}")
    size = _side(puzzles.shape[1])
    if puzzles.size and not np.issubdtype(puzzles.dtype, np.integer):
        raise ValueError(f"Sudoku cells must be integers, got dtype {puzzles.dtype}")
    if puzzles.size and (puzzles.min() < 0 or puzzles.max() > size):
        row = int(np.flatnonzero(((puzzles < 0) | (puzzles > size)).any(axis=1))[0])
        raise ValueError(f"puzzle {row} has a value outside 0..{size}")
    # A private writable copy: one compiled kernel signature for every caller's array.
    grids = np.array(puzzles, dtype=np.uint8, order="C", copy=True)
    B = grids.shape[0]
    solutions = np.zeros_like(grids)
    counts = np.zeros(B, dtype=np.int64)
    guesses = np.zeros(B, dtype=np.int64)
    k = _kernels()
    if size == 9:
        k.solve_batch9_kernel(grids, 2, solutions, counts, guesses)
    else:
        peers, units, popcount = _tables(size)
        k.solve_batch_kernel(grids, peers, units, popcount, 2, solutions, counts, guesses)
    return solutions, counts, guesses


def solve(puzzle: np.ndarray | str) -> SolveResult:
    """Solve one puzzle (string or grid). Clashing givens give ``n_solutions == 0``."""
    grid = _as_grid(puzzle)
    solutions, counts, guesses = solve_batch(grid[None])
    n = int(counts[0])
    return SolveResult(solutions[0] if n else None, n, int(guesses[0]))


def rate(puzzle: np.ndarray | str) -> int:
    """The difficulty rating: guesses of the fixed-order search (0 = singles solve it).

    Raises:
        ValueError: the puzzle is malformed or has no or several solutions.
    """
    return validate(puzzle).guesses


def tier_of(rating: int) -> str:
    """The 9x9 tier of a rating (see the module docstring for the ranges)."""
    if rating < 0:
        raise ValueError(f"a rating is a guess count, never negative; got {rating}")
    if rating == 0:
        return "easy"
    if rating <= MEDIUM_MAX_RATING:
        return "medium"
    if rating <= HARD_MAX_RATING:
        return "hard"
    return "extreme"


def mini_tier_of(puzzle: np.ndarray | str) -> str:
    """The 4x4 tier of a puzzle by its number of givens: ``hard`` <= 5 < ``medium`` <= 7 < ``easy``."""
    givens = int(np.count_nonzero(_as_grid(puzzle, size=4)))
    if givens <= MINI_TIER_GIVENS["hard"][1]:
        return "hard"
    return "medium" if givens <= MINI_TIER_GIVENS["medium"][1] else "easy"


def validate(puzzle: np.ndarray | str, solution: np.ndarray | str | None = None) -> SolveResult:
    """Check that a puzzle is well formed and has exactly one solution (and that it is ``solution``).

    Args:
        puzzle: a puzzle string or (S,) / (n, n) grid.
        solution: optionally the claimed solution, string or grid.

    Returns:
        The solver's result (solution, 1, rating).

    Raises:
        ValueError: naming the problem: wrong length, bad character or value (and where), two
            equal givens in a row/column/box, a solution with blanks, that is not a valid grid
            or that contradicts a given, no solution, several solutions.
    """
    grid = _as_grid(puzzle)
    size = _side(grid.size)
    clash = _first_clash(grid, size)
    if clash:
        digit, unit = clash
        raise ValueError(f"clashing givens: digit {digit} appears twice in {unit}")
    claimed = None
    if solution is not None:
        claimed = _as_grid(solution, "solution", size)
        if (claimed == 0).any():
            pos = int(np.argmax(claimed == 0))
            raise ValueError(f"the solution has a blank at {_where(pos, size)}")
        clash = _first_clash(claimed, size)
        if clash:
            digit, unit = clash
            raise ValueError(
                f"the solution is not a valid grid: digit {digit} appears twice in {unit}"
            )
        wrong = np.flatnonzero((grid > 0) & (claimed != grid))
        if wrong.size:
            pos = int(wrong[0])
            raise ValueError(
                f"the solution contradicts the given {int(grid[pos])} at {_where(pos, size)} "
                f"(it has {int(claimed[pos])})"
            )
    result = solve(grid)
    if result.n_solutions == 0:
        raise ValueError("the puzzle has no solution")
    if result.n_solutions > 1:
        raise ValueError("the puzzle has several solutions (a proper Sudoku has exactly one)")
    if claimed is not None and not np.array_equal(claimed, result.solution):
        # Unreachable for a valid grid agreeing with the givens of a unique puzzle; kept as a guard.
        raise ValueError("the solution differs from the puzzle's unique solution")
    return result


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


Where = Callable[[int], str]  # row index -> "file:line" for error messages

#: Puzzles handled per numpy pass when reading files, to bound the temporaries of big files.
_IO_CHUNK = 1 << 16


def _parse_many(strings: Sequence[str], size: int, where: Where, what: str) -> np.ndarray:
    """(N, S) uint8 from N strings of one size; errors name ``where(i)``."""
    S = size * size
    for i, text in enumerate(strings):
        if len(text) != S:
            raise ValueError(
                f"{where(i)}: a {size}x{size} Sudoku {what} must have {S} characters, got {len(text)}"
            )
    out = np.zeros((len(strings), S), dtype=np.uint8)
    table = _char_table(size)
    for start in range(0, len(strings), _IO_CHUNK):
        part = strings[start : start + _IO_CHUNK]
        raw = "".join(part).encode("ascii", errors="replace")  # a non-ASCII char -> b"?"
        values = table[np.frombuffer(raw, dtype=np.uint8)].reshape(len(part), S)
        bad = np.flatnonzero((values == 255).any(axis=1))
        if bad.size:
            i = start + int(bad[0])
            try:
                _decode_chars(strings[i], size, what)
            except ValueError as err:
                raise ValueError(f"{where(i)}: {err}") from None
        out[start : start + len(part)] = values
    return out


def _format_many(grids: np.ndarray, blank: str) -> list[str]:
    """Row-major strings of many grids at once (blank = one ASCII character)."""
    grids = np.asarray(grids, dtype=np.uint8)
    if grids.size and grids.max() > 9:
        raise ValueError(f"grid values must be 0..9, got up to {grids.max()}")
    table = np.frombuffer((blank + "123456789").encode("ascii"), dtype=np.uint8)
    S = grids.shape[1]
    text = table[grids].tobytes().decode("ascii")
    return [text[i : i + S] for i in range(0, len(text), S)]


def _check_answers(questions: np.ndarray, answers: np.ndarray, where: Where) -> None:
    """Each answer must be a complete valid grid that keeps its question's givens."""
    size = _side(questions.shape[1])
    units = _units(size)
    digits = np.arange(1, size + 1, dtype=np.uint8)
    for start in range(0, len(questions), _IO_CHUNK):
        q = questions[start : start + _IO_CHUNK]
        a = answers[start : start + _IO_CHUNK]
        valid = (a > 0).all(axis=1)
        # A unit is valid when its n cells hold n distinct digits: sort and compare with 1..n.
        for cells in np.split(units, 3):
            valid &= (np.sort(a[:, cells], axis=2) == digits).all(axis=(1, 2))
        kept = ((q == 0) | (q == a)).all(axis=1)
        bad = np.flatnonzero(~(valid & kept))
        if bad.size:
            i = int(bad[0])
            problem = (
                "the answer is not a valid solved grid"
                if not valid[i]
                else "the answer contradicts the question's givens"
            )
            raise ValueError(f"{where(start + i)}: {problem}")


def _fill_missing(
    questions: np.ndarray,
    answers: np.ndarray,
    ratings: np.ndarray,
    missing: np.ndarray,
    where: Where,
) -> None:
    """Solve the rows flagged in ``missing`` in place (answer and rating)."""
    rows = np.flatnonzero(missing)
    if rows.size == 0:
        return
    solutions, counts, guesses = solve_batch(questions[rows])
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        kind = "no solution" if counts[bad[0]] == 0 else "several solutions"
        raise ValueError(f"{where(int(rows[bad[0]]))}: the puzzle has {kind}")
    answers[rows] = solutions
    ratings[rows] = guesses


def read_csv(path: str | os.PathLike[str], size: int | None = None) -> SudokuSet:
    """Read a Sudoku-Extreme style CSV: header ``source,question,answer,rating``.

    ``question`` is required; an empty ``answer`` or ``rating`` is filled in by the solver, an
    empty ``source`` becomes the file name. Blanks are ``.`` or ``0``.

    Args:
        path: the CSV file.
        size: 9 or 4 to require grids of that size; None infers it from the first puzzle.

    Raises:
        ValueError: naming the file (and line): not a text file, missing header or column,
            puzzles of the other size than ``size``, bad puzzle strings, mixed sizes, an
            answer that is not a valid solution of its question, a non-integer rating, a
            question without a unique solution when its answer must be solved.
    """
    path = Path(path)
    expected = f"a Sudoku CSV with the header {','.join(CSV_HEADER)}"
    with open_text(path, expected, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected the header {','.join(CSV_HEADER)}")
        header = [h.strip().lower() for h in header]
        if "question" not in header:
            raise ValueError(
                f"{path}: the header {','.join(header)!r} has no 'question' column "
                f"(expected {','.join(CSV_HEADER)})"
            )
        col = {name: header.index(name) for name in CSV_HEADER if name in header}
        sources, questions, answers, ratings, lines = [], [], [], [], []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise ValueError(
                    f"{at_line(path, line_no)}: expected {len(header)} fields, got {len(row)}"
                )
            lines.append(line_no)
            questions.append(row[col["question"]].strip())
            answers.append(row[col["answer"]].strip() if "answer" in col else "")
            ratings.append(row[col["rating"]].strip() if "rating" in col else "")
            sources.append(row[col["source"]].strip() if "source" in col else "")

    def where(i: int) -> str:
        return at_line(path, lines[i])

    if not questions:
        empty = np.zeros((0, (size or 9) ** 2), np.uint8)
        return SudokuSet(empty, empty.copy(), np.zeros(0, np.int32), [])
    size = _file_size(questions[0], size, where(0))
    q = _parse_many(questions, size, where, "question")
    has_answer = np.array([bool(text) for text in answers])
    a = np.zeros_like(q)
    if has_answer.any():
        rows = np.flatnonzero(has_answer)

        def where_answer(k: int) -> str:
            return where(int(rows[k]))

        a[rows] = _parse_many([answers[i] for i in rows], size, where_answer, "answer")
        _check_answers(q[rows], a[rows], where_answer)
    r = np.zeros(len(q), dtype=np.int32)
    has_rating = np.zeros(len(q), dtype=bool)
    for i, text in enumerate(ratings):
        if text:
            try:
                r[i] = int(float(text))
            except ValueError:
                raise ValueError(f"{where(i)}: the rating {text!r} is not a number") from None
            has_rating[i] = True
    _fill_missing(q, a, r, ~has_answer | ~has_rating, where)
    names = [name or path.stem for name in sources]
    return SudokuSet(q, a, r, names)


def write_csv(path: str | os.PathLike[str], puzzles: SudokuSet) -> None:
    """Write a set in the Sudoku-Extreme CSV format (blanks as ``.``, answers as digits).

    The file appears whole or not at all (:mod:`hrm_env.fileio`).

    Raises:
        WriteError: naming ``path`` when it cannot be written.
    """
    path = Path(path)
    questions = _format_many(puzzles.questions, ".")
    answers = _format_many(puzzles.answers, "0")
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(
            zip(
                puzzles.sources,
                questions,
                answers,
                np.asarray(puzzles.ratings).tolist(),
                strict=True,
            )
        )


def _read_lines(path: Path, size: int | None) -> tuple[np.ndarray, list[int]]:
    strings, lines = [], []
    with open_text(path, "a Sudoku .txt file, one puzzle per line") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            strings.append(text.split()[0])
            lines.append(line_no)
    if strings:
        size = _file_size(strings[0], size, at_line(path, lines[0]))
    size = _check_size(9 if size is None else size)
    grids = _parse_many(strings, size, lambda i: at_line(path, lines[i]), "puzzle")
    return grids, lines


def read_txt(path: str | os.PathLike[str], size: int | None = 9) -> np.ndarray:
    """Read one puzzle per line (``#`` comment lines and blank lines skipped).

    Only the first whitespace-separated field of a line is the puzzle, so trailing notes are
    allowed.

    Args:
        path: the text file.
        size: 9 or 4; None infers it from the first puzzle.

    Returns:
        (N, S) uint8 puzzles.

    Raises:
        ValueError: naming the file (and line): not a text file, puzzles of the other size,
            a malformed puzzle.
    """
    return _read_lines(Path(path), size)[0]


def load(path: str | os.PathLike[str], size: int | None = None) -> SudokuSet:
    """Read a ``.csv`` (Sudoku-Extreme format) or ``.txt`` (one per line) puzzle file.

    Answers and ratings missing from the file are computed by the solver.

    Args:
        path: the file.
        size: 9 or 4 to require grids of that size; None infers it from the first puzzle.

    Raises:
        ValueError: an unknown suffix, or any problem ``read_csv`` / ``read_txt`` reports.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, size)
    if suffix == ".txt":
        questions, lines = _read_lines(path, size)
        answers = np.zeros_like(questions)
        ratings = np.zeros(len(questions), dtype=np.int32)
        everything = np.ones(len(questions), dtype=bool)
        _fill_missing(questions, answers, ratings, everything, lambda i: at_line(path, lines[i]))
        return SudokuSet(questions, answers, ratings, [path.stem] * len(questions))
    raise ValueError(f"{path}: unknown Sudoku file type {suffix!r}; use .csv or .txt")


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Transform:
    """One validity-preserving symmetry: ``out[i, j] = digits[h[rows[i], cols[j]]]``.

    ``h`` is the grid, transposed first when ``transpose``. ``rows`` keeps each band's rows
    together (a band permutation composed with row permutations inside bands), ``cols``
    likewise for stacks, and ``digits`` relabels 1..n (``digits[0] == 0`` keeps blanks).

    Attributes:
        size: grid side (9 or 4).
        digits: (n + 1,) uint8 relabelling.
        rows: (n,) int64 source row of each output row.
        cols: (n,) int64 source column of each output column.
        transpose: transpose before permuting.
    """

    size: int
    digits: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    transpose: bool

    def source_index(self) -> np.ndarray:
        """(S,) int64: the input cell each output cell is read from."""
        i, j = np.meshgrid(self.rows, self.cols, indexing="ij")
        src = j * self.size + i if self.transpose else i * self.size + j
        return src.reshape(-1)


def _line_permutations(rng: np.random.Generator, b: int, count: int) -> np.ndarray:
    """(count, b*b) random permutations that keep lines of one band (or stack) together."""
    bands = np.argsort(rng.random((count, b)), axis=1)
    within = np.argsort(rng.random((count, b, b)), axis=2)
    return (bands[:, :, None] * b + within).reshape(count, b * b)


def random_transform(rng: np.random.Generator, size: int = 9) -> Transform:
    """A uniformly random symmetry of the ``size`` x ``size`` grid (seeded by ``rng``)."""
    size = _check_size(size)
    b = int(round(size**0.5))
    digits = np.concatenate([[0], rng.permutation(size) + 1]).astype(np.uint8)
    rows = _line_permutations(rng, b, 1)[0]
    cols = _line_permutations(rng, b, 1)[0]
    return Transform(size, digits, rows, cols, bool(rng.random() < 0.5))


def apply_transform(grids: np.ndarray, t: Transform) -> np.ndarray:
    """Apply ``t`` to a grid (S,) or a batch (B, S); returns the same shape, uint8."""
    grids = np.asarray(grids)
    if grids.shape[-1] != t.size * t.size or grids.ndim not in (1, 2):
        raise ValueError(
            f"grids must be (S,) or (B, S) with S = {t.size * t.size} for this transform, "
            f"got shape {grids.shape}"
        )
    if grids.size and (grids.min() < 0 or grids.max() > t.size):
        raise ValueError(f"grid values must be 0..{t.size}")
    return t.digits[grids[..., t.source_index()]]


def invert_transform(t: Transform) -> Transform:
    """The transform ``u`` with ``apply_transform(apply_transform(g, t), u) == g``."""
    inv_rows = np.argsort(t.rows)
    inv_cols = np.argsort(t.cols)
    inv_digits = np.argsort(t.digits).astype(np.uint8)
    if t.transpose:
        # g[x, y] = D^-1[out[inv_rows[y], inv_cols[x]]]: transpose out, rows from the columns.
        return Transform(t.size, inv_digits, inv_cols, inv_rows, True)
    return Transform(t.size, inv_digits, inv_rows, inv_cols, False)


def augment(
    rng: np.random.Generator, puzzles: np.ndarray, solutions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one fresh random symmetry per row to puzzles and solutions alike.

    Args:
        rng: the only source of randomness.
        puzzles, solutions: (B, S) grids (or (S,) for one).

    Returns:
        (puzzles, solutions) transformed, uint8, same shapes.
    """
    puzzles = np.asarray(puzzles)
    solutions = np.asarray(solutions)
    if puzzles.shape != solutions.shape or puzzles.ndim not in (1, 2):
        raise ValueError(
            f"puzzles and solutions must be (B, S) arrays of one shape, got {puzzles.shape} "
            f"and {solutions.shape}"
        )
    single = puzzles.ndim == 1
    p2 = puzzles.reshape(-1, puzzles.shape[-1])
    s2 = solutions.reshape(p2.shape)
    size = _side(p2.shape[1])
    for name, g in (("puzzles", p2), ("solutions", s2)):
        if g.size and (g.min() < 0 or g.max() > size):
            raise ValueError(f"{name} must hold values 0..{size}")
    B = p2.shape[0]
    b = int(round(size**0.5))
    rows = _line_permutations(rng, b, B)  # (B, n)
    cols = _line_permutations(rng, b, B)  # (B, n)
    transpose = rng.random(B) < 0.5
    digits = np.concatenate(
        [np.zeros((B, 1), np.int64), np.argsort(rng.random((B, size)), axis=1) + 1], axis=1
    ).astype(np.uint8)  # (B, n + 1)
    i = rows[:, :, None]  # (B, n, 1)
    j = cols[:, None, :]  # (B, 1, n)
    src = np.where(transpose[:, None, None], j * size + i, i * size + j).reshape(B, -1)  # (B, S)
    out = []
    for g in (p2, s2):
        moved = np.take_along_axis(g.astype(np.int64), src, axis=1)
        out.append(np.take_along_axis(digits, moved, axis=1))
    if single:
        return out[0][0], out[1][0]
    return out[0], out[1]


@cache
def _hash_weights(length: int) -> np.ndarray:
    weights, w = [], 1
    for _ in range(length):
        w = (w * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64
        weights.append(w | 1)
    return np.array(weights, dtype=np.uint64)


def signature(puzzles: np.ndarray) -> np.ndarray:
    """A hash of each puzzle that every augmentation leaves unchanged.

    Each given is described by the givens in its row, its column and its box and by how often
    its digit is given; the sorted multiset of these descriptions (the smaller of it and its
    transposed form) is hashed. Equivalent puzzles share a signature; different puzzles rarely
    do (which would only merge their groups when splitting train from test).

    Args:
        puzzles: (N, S) grids.

    Returns:
        (N,) uint64 signatures.
    """
    puzzles = np.asarray(puzzles)
    if puzzles.ndim != 2:
        raise ValueError(f"puzzles must be (N, S), got shape {puzzles.shape}")
    N, S = puzzles.shape
    size = _side(S)
    units = _units(size)
    given = puzzles > 0  # (N, S)
    counts = np.stack([given[:, cells].sum(axis=2) for cells in np.split(units, 3)], axis=1)
    # counts: (N, 3, n) givens per row / column / box; spread back onto cells.
    cell_row = np.arange(S) // size
    cell_col = np.arange(S) % size
    b = int(round(size**0.5))
    cell_box = (cell_row // b) * b + cell_col // b
    r = counts[:, 0, cell_row].astype(np.int32)  # (N, S)
    c = counts[:, 1, cell_col].astype(np.int32)
    x = counts[:, 2, cell_box].astype(np.int32)
    offsets = (np.arange(N) * (size + 1))[:, None]
    freq = np.bincount((puzzles + offsets).ravel(), minlength=N * (size + 1))
    freq = freq.reshape(N, size + 1).astype(np.int32)  # (N, n + 1) how often each digit is given
    f = np.take_along_axis(freq, puzzles.astype(np.intp), axis=1)
    keys = []
    for first, second in ((r, c), (c, r)):
        k = ((first * 16 + second) * 16 + x) * 16 + f + 1  # < 2**16, 0 kept for blanks
        keys.append(np.sort(np.where(given, k, 0), axis=1))
    a, t = keys
    # Lexicographically smaller of the two key rows, so transposing changes nothing.
    diff = a != t
    first_diff = np.argmax(diff, axis=1)
    rows = np.arange(N)
    use_t = diff.any(axis=1) & (t[rows, first_diff] < a[rows, first_diff])
    canon = np.where(use_t[:, None], t, a).astype(np.uint64)  # (N, S)
    # A polynomial hash with odd 64-bit weights (uint64 arithmetic wraps), then a final mix.
    with np.errstate(over="ignore"):
        h = (canon * _hash_weights(S)).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _run_generator(
    rng: np.random.Generator, size: int, count: int, mode: int, min_givens: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` minimal (mode 0) or singles-minimal (mode 1) puzzles, dug to ``min_givens``."""
    S = size * size
    seeds = rng.integers(1, 2**63 - 1, size=count, dtype=np.int64).astype(np.uint64)
    min_givens = np.broadcast_to(np.asarray(min_givens, dtype=np.int64), (count,)).copy()
    puzzles = np.zeros((count, S), np.uint8)
    solutions = np.zeros((count, S), np.uint8)
    ratings = np.zeros(count, np.int64)
    peers, units, popcount = _tables(size)
    _kernels().generate_kernel(
        seeds, peers, units, popcount, mode, min_givens, puzzles, solutions, ratings
    )
    return puzzles, solutions, ratings


# Rough acceptance rates of minimal puzzles per 9x9 tier (measured, see the module docstring);
# they only size each round of candidates, correctness never depends on them.
_ACCEPT = {"easy": 1.0, "medium": 0.4, "hard": 0.15}


def generate(rng: np.random.Generator, difficulty: str, n: int, size: int = 9) -> SudokuSet:
    """Generate ``n`` puzzles with a unique solution, all of tier ``difficulty``.

    Args:
        rng: the only source of randomness (same state, same puzzles).
        difficulty: a 9x9 tier (``TIERS``) or, for ``size=4``, a mini tier (``MINI_TIERS``).
        n: how many puzzles.
        size: 9, or 4 for mini.

    Returns:
        A ``SudokuSet`` whose ratings are the solver's guesses of each puzzle.

    Raises:
        ValueError: unknown tier or size, negative ``n``.
    """
    size = _check_size(size)
    tiers = TIERS + TEST_TIERS if size == 9 else MINI_TIERS
    if difficulty not in tiers:
        raise ValueError(
            f"unknown difficulty {difficulty!r} for {size}x{size} Sudoku; choose one of "
            f"{', '.join(tiers)}"
        )
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if size == 9 and difficulty == "extreme" and n > 0:
        return _generate_extreme(rng, n)
    if difficulty in TEST_TIERS:
        return _generate_from_bank(rng, load_bank(difficulty), n)
    parts_q, parts_a, parts_r = [], [], []
    have = 0
    while have < n:
        need = n - have
        if size == 4:
            low, high = MINI_TIER_GIVENS[difficulty]
            # Dig down to a drawn target count; minimal 4x4 puzzles have 4..6 givens, so the
            # target is reached except for a rare early-minimal "hard" one, which is dropped.
            targets = rng.integers(low, high + 1, size=need) if difficulty != "hard" else 0
            q, a, r = _run_generator(rng, 4, need, 0, targets)
            givens = np.count_nonzero(q, axis=1)
            keep = (givens >= low) & (givens <= high)
        else:
            count = max(8, int(need / _ACCEPT[difficulty] * 1.2))
            q, a, r = _run_generator(rng, 9, count, 1 if difficulty == "easy" else 0, 0)
            keep = np.array([tier_of(int(v)) == difficulty for v in r], dtype=bool)
        idx = np.flatnonzero(keep)[:need]
        parts_q.append(q[idx])
        parts_a.append(a[idx])
        parts_r.append(r[idx])
        have += idx.size
    S = size * size
    questions = np.concatenate(parts_q) if parts_q else np.zeros((0, S), np.uint8)
    answers = np.concatenate(parts_a) if parts_a else np.zeros((0, S), np.uint8)
    ratings = np.concatenate(parts_r).astype(np.int32) if parts_r else np.zeros(0, np.int32)
    source = f"generated-{difficulty}" if size == 9 else f"generated-mini-{difficulty}"
    return SudokuSet(questions, answers, ratings, [source] * len(questions))


@cache
def _extreme_pool() -> tuple[np.ndarray, np.ndarray, list[str]]:
    bank = load_bank("train")
    rows = np.flatnonzero(bank.ratings >= EXTREME_MIN_RATING)
    return bank.questions[rows], bank.answers[rows], [bank.sources[i] for i in rows]


def _generate_extreme(rng: np.random.Generator, n: int) -> SudokuSet:
    pool_q, pool_a, pool_src = _extreme_pool()
    parts_q, parts_a, parts_r, sources = [], [], [], []
    have = 0
    while have < n:
        need = n - have
        # A symmetry can lower the rating (the search order is row-major), so draw a few extra
        # and keep those still rated extreme.
        pick = rng.integers(0, len(pool_q), size=max(8, int(need * 1.3)))
        q, a = augment(rng, pool_q[pick], pool_a[pick])
        solutions, counts, guesses = solve_batch(q)
        keep = np.flatnonzero((counts == 1) & (guesses >= EXTREME_MIN_RATING))[:need]
        parts_q.append(q[keep])
        parts_a.append(a[keep])
        parts_r.append(guesses[keep])
        sources.extend(pool_src[int(pick[i])] for i in keep)
        have += keep.size
    return SudokuSet(
        np.concatenate(parts_q),
        np.concatenate(parts_a),
        np.concatenate(parts_r).astype(np.int32),
        sources,
    )


def _generate_from_bank(rng: np.random.Generator, bank: SudokuSet, n: int) -> SudokuSet:
    """``n`` puzzles of ``bank`` drawn with replacement, each under a fresh random symmetry and
    re-rated (a symmetry can change the rating; the tier is the bank, not a rating range)."""
    pick = rng.integers(0, len(bank), size=n)
    q, a = augment(rng, bank.questions[pick], bank.answers[pick])
    if n == 0:
        return SudokuSet(q, a, np.zeros(0, np.int32), [])
    _, _, guesses = solve_batch(q)
    return SudokuSet(q, a, guesses.astype(np.int32), [bank.sources[int(i)] for i in pick])


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def encode(grids: np.ndarray) -> np.ndarray:
    """Grids (..., S) to model tokens (int64); the value is the token."""
    return checked_tokens(grids, VOCAB_SIZE, "grid values", np.int64)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Model tokens (..., S) back to uint8 grids; every token must be in 0..9."""
    return checked_tokens(tokens, VOCAB_SIZE, "Sudoku tokens", np.uint8)


# --------------------------------------------------------------------------------------------
# Bundled banks
# --------------------------------------------------------------------------------------------

#: The bundled banks; each is the file ``hrm_env/data/sudoku_<split>.npz`` with "-" as "_".
BANK_SPLITS = ("train", "test", "extreme-mix")


def pack_bank(puzzles: SudokuSet) -> dict[str, np.ndarray]:
    """The compact arrays a bank ``.npz`` stores (used by ``scripts/build_sudoku_banks.py``).

    A solution's last row and column follow from the rest (each line holds 1..9 once), so only
    the top-left 8x8 block is kept; the givens are a bit mask over the 81 cells.
    """
    if puzzles.size != 9:
        raise ValueError("banks hold 9x9 puzzles")
    answers = puzzles.answers.reshape(-1, 9, 9)
    names = sorted(set(puzzles.sources))
    return {
        "block": np.ascontiguousarray(answers[:, :8, :8]).reshape(-1, 64),
        "givens": np.packbits(puzzles.questions > 0, axis=1),
        "ratings": np.asarray(puzzles.ratings, dtype=np.int32),
        "source_index": np.array([names.index(s) for s in puzzles.sources], dtype=np.uint8),
        "source_names": np.array(names),
    }


def unpack_bank(arrays: dict[str, np.ndarray]) -> SudokuSet:
    """Inverse of ``pack_bank``."""
    block = arrays["block"].reshape(-1, 8, 8).astype(np.int64)
    N = block.shape[0]
    grid = np.zeros((N, 9, 9), np.int64)
    grid[:, :8, :8] = block
    grid[:, :8, 8] = 45 - block.sum(axis=2)
    grid[:, 8, :] = 45 - grid[:, :8, :].sum(axis=1)
    answers = grid.reshape(N, 81).astype(np.uint8)
    mask = np.unpackbits(arrays["givens"], axis=1, count=81).astype(bool)
    questions = np.where(mask, answers, 0).astype(np.uint8)
    names = [str(s) for s in arrays["source_names"]]
    sources = [names[i] for i in arrays["source_index"]]
    return SudokuSet(questions, answers, arrays["ratings"].astype(np.int32), sources)


@cache
def load_bank(split: str) -> SudokuSet:
    """The bundled 9x9 bank ``"train"``, ``"test"`` or ``"extreme-mix"`` (read once, then
    cached; read-only arrays).

    ``test`` holds the hardest puzzles of the public collections (highest ratings) and is what
    evaluation and benchmarks use by default (the ``extreme`` benchmark); ``extreme-mix`` holds
    puzzles drawn at random from the same collections, in draw order (so its first N are a
    random sample); ``train`` holds the rest. No puzzle of either test bank is equivalent
    under ``augment`` to a train puzzle (the split groups puzzles by ``signature``).
    """
    if split not in BANK_SPLITS:
        raise ValueError(
            f"unknown bank split {split!r}; choose one of {', '.join(map(repr, BANK_SPLITS))}"
        )
    from importlib import resources

    name = split.replace("-", "_")
    ref = resources.files("hrm_env").joinpath("data", f"sudoku_{name}.npz")
    with resources.as_file(ref) as file, np.load(file) as data:
        bank = unpack_bank({key: data[key] for key in data.files})
    for array in (bank.questions, bank.answers, bank.ratings):
        array.flags.writeable = False
    return bank
