"""30x30 mazes in the style of the public Maze-Hard set: parse, validate, solve, check, generate,
augment, read/write CSV and encode as model tokens.

A maze is a flat ``uint8`` grid of ``SEQ_LEN = 900`` cells, row-major, whose value is also its
model token: ``1`` wall ``#``, ``2`` open ``' '``, ``3`` start ``S``, ``4`` goal ``G``, ``5`` path
``o`` (``0`` is reserved for padding and never appears in a maze). A *question* has walls, open
cells and exactly one S and one G; its *answer* is the same grid with the cells strictly between S
and G on one shortest path marked ``o`` (S and G stay as they are), as in the public CSVs with
header ``source,question,answer,rating``.

Moves go between 4-neighbours that are not walls. A path's *length* is its number of moves, so a
shortest path of length L marks L - 1 cells ``o``. ``rating`` is the shortest-path length.
A predicted answer counts as correct when its ``o`` cells form *a* shortest path; when several
paths tie, every one of them is correct.

Shapes: B batch, S = 900 cells (flat), a grid viewed as (30, 30) rows x columns.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from hrm_env.fileio import atomic_open
from hrm_env.puzzles._files import at_line, open_text
from hrm_env.puzzles._tokens import checked_tokens

__all__ = [
    "SIDE",
    "SEQ_LEN",
    "WALL",
    "OPEN",
    "START",
    "GOAL",
    "PATH",
    "VOCAB_SIZE",
    "CHARS",
    "TIERS",
    "TIER_LENGTHS",
    "WALL_FRACTION",
    "MazeSet",
    "parse",
    "format",
    "read_csv",
    "write_csv",
    "load",
    "validate",
    "shortest_path_length",
    "shortest_path_cells",
    "solve",
    "solve_batch",
    "endpoint_distances",
    "closest_shortest_paths",
    "is_valid_shortest_path",
    "check_batch",
    "tier_of",
    "generate",
    "generate_parallel",
    "dihedral",
    "dihedral_index",
    "invert_dihedral",
    "augment",
    "encode",
    "decode",
]

SIDE = 30
SEQ_LEN = SIDE * SIDE
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
#: Token values 0..5: the five cell kinds plus padding (0).
VOCAB_SIZE = 6
#: The character of each value 1..5, in the public sets' order (value = index + 1).
CHARS = "# SGo"

TIERS: tuple[str, ...] = ("easy", "medium", "hard")
#: Inclusive range of the shortest-path length (moves from S to G) of each tier. ``hard`` is the
#: Maze-Hard filter of the HRM paper (shortest path longer than 110); its upper end is no limit.
TIER_LENGTHS: dict[str, tuple[int, int]] = {
    "easy": (10, 40),
    "medium": (41, 110),
    "hard": (111, SEQ_LEN),
}
#: Each generated maze first draws its wall count uniformly from this fraction of the cells.
WALL_FRACTION = (0.3, 0.5)
#: Mazes per independent child seed in ``generate_parallel`` (fixed so the output does not
#: depend on the number of workers).
PARALLEL_CHUNK = 256

_CSV_HEADER = ("source", "question", "answer", "rating")
_CHAR_TO_VALUE = np.zeros(128, dtype=np.uint8)  # 0 marks "not a maze character"
for _value, _char in enumerate(CHARS, start=1):
    _CHAR_TO_VALUE[ord(_char)] = _value
_VALUE_TO_CHAR = np.array([ord("?")] + [ord(c) for c in CHARS], dtype=np.uint8)


def _kernels() -> ModuleType:
    # numba is imported on first use only, so importing this module (e.g. for its constants or
    # parse/format) stays cheap.
    from . import _maze_kernels

    return _maze_kernels


def _where(index: int) -> str:
    row, col = divmod(int(index), SIDE)
    return f"position {index} (row {row}, column {col})"


# --------------------------------------------------------------------------- text and arrays


def parse(text: str) -> np.ndarray:
    """Parse a maze string into a grid.

    Args:
        text: 900 characters over ``# SGo``, row-major, as in the public CSVs. Also accepted:
            30 lines of 30 characters (what ``format(grid, rows=True)`` writes), and trailing
            line breaks.

    Returns:
        (S,) uint8 grid.

    Raises:
        ValueError: wrong length (with the length) or a character outside ``# SGo`` (with the
            character and its position).
    """
    if not isinstance(text, str):
        raise ValueError(f"a maze must be given as a string, got {type(text).__name__}")
    text = text.rstrip("\r\n")
    if len(text) != SEQ_LEN and "\n" in text:
        lines = text.splitlines()
        if len(lines) == SIDE and all(len(line) == SIDE for line in lines):
            text = "".join(lines)
    if len(text) != SEQ_LEN:
        raise ValueError(f"a maze must have {SEQ_LEN} characters ({SIDE}x{SIDE}), got {len(text)}")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    values = np.where(codes < 128, _CHAR_TO_VALUE[np.minimum(codes, 127)], 0).astype(np.uint8)
    bad = np.flatnonzero(values == 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bad maze character {text[i]!r} at {_where(i)}; allowed are {CHARS!r}")
    return values


def format(grid: np.ndarray, rows: bool = False) -> str:  # noqa: A001 - the interface name
    """Write a grid as a 900-character string over ``# SGo`` (or 30 lines with ``rows=True``).

    Raises:
        ValueError: wrong shape, or a value that is no maze cell (e.g. padding 0).
    """
    grid = _as_grid(grid, "maze")
    bad = np.flatnonzero((grid < WALL) | (grid > PATH))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"maze value {int(grid[i])} at {_where(i)} has no character")
    text = _VALUE_TO_CHAR[grid].tobytes().decode("ascii")
    if rows:
        return "\n".join(text[r * SIDE : (r + 1) * SIDE] for r in range(SIDE))
    return text


def _as_grid(grid: np.ndarray | str, what: str = "maze") -> np.ndarray:
    """(S,) uint8 from a string or an integer array of shape (S,) or (SIDE, SIDE)."""
    if isinstance(grid, str):
        return parse(grid)
    arr = np.asarray(grid)
    if arr.shape not in ((SEQ_LEN,), (SIDE, SIDE)):
        raise ValueError(
            f"a {what} must have {SEQ_LEN} cells ({SIDE}x{SIDE}), got an array of shape {arr.shape}"
        )
    if arr.dtype == np.uint8:
        return arr.reshape(SEQ_LEN)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} cells must be integer tokens, got dtype {arr.dtype}")
    flat = arr.reshape(SEQ_LEN)
    bad = np.flatnonzero((flat < 0) | (flat >= VOCAB_SIZE))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{what} token {int(flat[i])} at {_where(i)} is outside 0..{VOCAB_SIZE - 1}"
        )
    return flat.astype(np.uint8)


def _as_batch(grids: np.ndarray, what: str) -> np.ndarray:
    """(B, S) uint8 from (S,) or (B, S) integer tokens; out-of-range tokens raise."""
    arr = np.asarray(grids)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != SEQ_LEN:
        raise ValueError(f"{what} must have shape (B, {SEQ_LEN}), got {np.shape(grids)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integer tokens, got dtype {arr.dtype}")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() >= VOCAB_SIZE):
            raise ValueError(f"{what} tokens must lie in 0..{VOCAB_SIZE - 1}")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- validation, solving


def validate(question: np.ndarray | str) -> None:
    """Check that a question is a well-formed, solvable maze.

    Args:
        question: a 900-character string or a grid of shape (S,) or (30, 30).

    Raises:
        ValueError: naming the problem: wrong length or shape, a bad character or token (and
            where), a path cell ``o`` in a question, not exactly one S and one G (with the
            counts), or no path from S to G.
    """
    grid = _as_grid(question, "maze")
    bad = np.flatnonzero((grid < WALL) | (grid > PATH))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"bad maze token {int(grid[i])} at {_where(i)}; cells must be 1..5 ({CHARS!r})"
        )
    marked = np.flatnonzero(grid == PATH)
    if marked.size:
        raise ValueError(
            f"a question must not contain path cells 'o'; found {marked.size}, the first at "
            f"{_where(int(marked[0]))}"
        )
    n_start = int(np.count_nonzero(grid == START))
    n_goal = int(np.count_nonzero(grid == GOAL))
    if n_start != 1 or n_goal != 1:
        raise ValueError(
            f"a maze needs exactly one start 'S' and one goal 'G', found {n_start} S and {n_goal} G"
        )
    if _kernels().shortest_lengths(grid[None])[0] < 0:
        s = int(np.flatnonzero(grid == START)[0])
        g = int(np.flatnonzero(grid == GOAL)[0])
        raise ValueError(f"no path from S at {_where(s)} to G at {_where(g)}")


def shortest_path_length(question: np.ndarray | str) -> int:
    """Moves on a shortest path from S to G, or -1 if G cannot be reached.

    Raises:
        ValueError: if the grid is malformed or does not hold exactly one S and one G.
    """
    grid = _with_one_start_and_goal(question)
    return int(_kernels().shortest_lengths(grid[None])[0])


def _with_one_start_and_goal(question: np.ndarray | str) -> np.ndarray:
    """The question as a grid, checked to hold exactly one S and one G."""
    grid = _as_grid(question, "maze")
    n_start = int(np.count_nonzero(grid == START))
    n_goal = int(np.count_nonzero(grid == GOAL))
    if n_start != 1 or n_goal != 1:
        raise ValueError(
            f"a maze needs exactly one start 'S' and one goal 'G', found {n_start} S and {n_goal} G"
        )
    return grid


def shortest_path_cells(question: np.ndarray | str) -> np.ndarray:
    """The cells that lie on at least one shortest path from S to G (S and G included).

    A correct answer marks exactly one such path; a cell outside this set is on no shortest
    path at all, whatever the tie-break.

    Returns:
        (S,) bool; all False when G cannot be reached.

    Raises:
        ValueError: if the grid is malformed or does not hold exactly one S and one G.
    """
    grid = _with_one_start_and_goal(question)
    k = _kernels()
    passable, dist, queue = k._scratch()
    k._mark_passable(grid, passable)
    s, g, _, _ = k.endpoints(grid)
    k.bfs(passable, s, dist, queue)
    from_s = dist[k.TO_PAD].copy()
    k.bfs(passable, g, dist, queue)
    from_g = dist[k.TO_PAD]
    length = from_s[int(np.flatnonzero(grid == GOAL)[0])]
    if length < 0:
        return np.zeros(SEQ_LEN, dtype=bool)
    return (from_s >= 0) & (from_g >= 0) & (from_s + from_g == length)


def endpoint_distances(questions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first distances of every cell from S and to G, for a batch of questions.

    Args:
        questions: (B, S) grids (not validated: S and G need not be unique).

    Returns:
        ``(from_s, to_g)``, (B, S) int32 each: moves from S to the cell and from the cell to
        G, -1 for walls and unreachable cells (and for every cell of a grid without exactly
        one S and one G). A cell lies on some shortest path exactly when
        ``from_s + to_g`` equals the path length, ``to_g`` at S.
    """
    return _kernels().endpoint_distances_batch(_as_batch(questions, "questions"))


def solve(question: np.ndarray | str) -> np.ndarray:
    """The answer grid: the question with one shortest path from S to G marked ``o``.

    Ties are broken the same way every time: walking from S, each step takes the first of
    up, left, right, down that is one move closer to G.

    Raises:
        ValueError: if the question is malformed or unsolvable (see ``validate``).
    """
    grid = _as_grid(question, "maze")
    validate(grid)
    answers, _ = _kernels().solve_batch(grid[None])
    return answers[0]


def solve_batch(questions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve many questions at once, without validating them.

    Returns:
        answers (B, S) uint8 (a row equals its question where there is no path) and
        lengths (B,) int32 shortest-path lengths, -1 where unsolvable or S/G not unique.
    """
    return _kernels().solve_batch(_as_batch(questions, "questions"))


def closest_shortest_paths(
    questions: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of all the shortest paths of each question, the one whose cells score highest.

    A maze often has several shortest paths, and any of them is a correct answer. Given a
    score per cell (for instance a model's log-odds of ``o`` against ``' '``), this picks
    the shortest path with the largest sum of scores over its cells between S and G, by
    dynamic programming over the cells that lie on some shortest path. A prediction that
    already marks one shortest path (positive scores on its cells, negative elsewhere) gets
    that very path back. Exact ties go to the solver's order (up, left, right, down).

    Args:
        questions: (B, S) or (S,) question grids.
        scores: float scores of the same shape.

    Returns:
        answers with the chosen path marked (the question where there is none), and lengths
        (B,) int32 (-1: unsolvable, or S/G not unique).
    """
    q = _as_batch(questions, "questions")
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.shape != q.shape:
        raise ValueError(f"scores must have the questions' shape {q.shape}, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("scores must be finite")
    return _kernels().closest_batch(q, np.ascontiguousarray(x))


def is_valid_shortest_path(question: np.ndarray | str, prediction: np.ndarray | str) -> bool:
    """Is ``prediction`` a correct answer: the question with exactly one shortest path marked?

    Correct means: every cell equals the question's except open cells marked ``o``, and those
    ``o`` cells together with S and G form a 4-connected path from S to G of the shortest
    length. Any shortest path counts. Moved walls, missing S or G, ``o`` off the path, broken or
    longer paths, padding tokens, or a question with no path all give False.

    Raises:
        ValueError: if either grid has the wrong shape or is not made of integer tokens.
    """
    return bool(check_batch(_as_grid(question, "maze")[None], _prediction_batch(prediction))[0])


def _prediction_batch(prediction: np.ndarray | str) -> np.ndarray:
    if isinstance(prediction, str):
        return parse(prediction)[None]
    arr = np.asarray(prediction)
    if arr.shape not in ((SEQ_LEN,), (SIDE, SIDE)):
        raise ValueError(
            f"a prediction must have {SEQ_LEN} cells ({SIDE}x{SIDE}), got an array of shape {arr.shape}"
        )
    return arr.reshape(1, SEQ_LEN)


def check_batch(questions: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Vectorised ``is_valid_shortest_path``.

    Args:
        questions: (B, S) question grids.
        predictions: (B, S) predicted answers; any integers (out-of-vocabulary tokens are
            simply wrong).

    Returns:
        (B,) bool.
    """
    q = _as_batch(questions, "questions")
    p = np.asarray(predictions)
    if p.ndim == 1:
        p = p[None]
    if p.shape != q.shape:
        raise ValueError(
            f"predictions must have the questions' shape {q.shape}, got {np.shape(predictions)}"
        )
    if not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"predictions must be integer tokens, got dtype {p.dtype}")
    in_range = np.ones(len(p), dtype=bool)
    if p.dtype != np.uint8:
        # A model may emit any token id; a row holding one outside the vocabulary is just wrong.
        in_range = ((p >= 0) & (p < VOCAB_SIZE)).all(axis=1)
        p = np.where(in_range[:, None], p, 0).astype(np.uint8)
    return _kernels().check_batch(q, np.ascontiguousarray(p)) & in_range


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class MazeSet:
    """Mazes with their answers.

    Attributes:
        questions: (N, S) uint8 question grids.
        answers: (N, S) uint8 answer grids (one shortest path marked ``o``).
        ratings: (N,) int32 shortest-path lengths (or the file's own ratings when read).
        sources: N strings saying where each maze came from.
    """

    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.questions)
        if np.shape(self.questions) != (n, SEQ_LEN) or np.shape(self.answers) != (n, SEQ_LEN):
            raise ValueError(
                f"questions and answers must both have shape (N, {SEQ_LEN}), got "
                f"{np.shape(self.questions)} and {np.shape(self.answers)}"
            )
        if np.shape(self.ratings) != (n,):
            raise ValueError(f"ratings must have shape ({n},), got {np.shape(self.ratings)}")
        if len(self.sources) != n:
            raise ValueError(f"sources must have {n} entries, got {len(self.sources)}")

    def __len__(self) -> int:
        return len(self.questions)


def tier_of(rating: int) -> str:
    """The tier whose shortest-path range holds ``rating``.

    Raises:
        ValueError: for a length below the easiest tier.
    """
    for tier in TIERS:
        lo, hi = TIER_LENGTHS[tier]
        if lo <= rating <= hi:
            return tier
    raise ValueError(
        f"shortest-path length {rating} is below every tier (easy starts at {TIER_LENGTHS['easy'][0]})"
    )


def _check_tier(difficulty: str) -> tuple[int, int]:
    if difficulty not in TIER_LENGTHS:
        raise ValueError(
            f"unknown maze difficulty {difficulty!r}; choose one of {', '.join(TIERS)}"
        )
    return TIER_LENGTHS[difficulty]


def generate(rng: np.random.Generator, difficulty: str, n: int) -> MazeSet:
    """Generate ``n`` mazes whose shortest path lies in the tier's length range.

    Each attempt walls off a uniformly random set of cells (the count drawn uniformly from
    ``WALL_FRACTION`` of the 900), places one end of the pair at the far end of a long path of
    a random component (double-sweep BFS: the cell farthest from a random open cell) and the
    other uniformly among the cells at a shortest distance inside the tier's range
    (``TIER_LENGTHS``), and swaps the two ends at random. Attempts with no such cell are
    rejected, so ``hard`` keeps only mazes with a shortest path longer than 110.

    Args:
        rng: the only source of randomness; the same generator state gives the same mazes.
        difficulty: ``easy``, ``medium`` or ``hard``.
        n: how many mazes.

    Returns:
        A ``MazeSet`` whose answers are ``solve(question)`` and ratings the path lengths.
    """
    lo, hi = _check_tier(difficulty)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    min_walls = round(WALL_FRACTION[0] * SEQ_LEN)
    max_walls = round(WALL_FRACTION[1] * SEQ_LEN)
    questions = np.empty((n, SEQ_LEN), dtype=np.uint8)
    answers = np.empty((n, SEQ_LEN), dtype=np.uint8)
    ratings = np.empty(n, dtype=np.int32)
    kernels = _kernels()
    row = 0
    idle = 0
    while row < n:
        # Bounded kernel calls so a tier that can never be met fails loudly instead of hanging;
        # the hard tier accepts about one attempt in 200.
        new_row, _ = kernels.generate_into(
            rng, lo, hi, min_walls, max_walls, questions, answers, ratings, row, 1_000_000
        )
        idle = 0 if new_row > row else idle + 1
        if idle >= 5:
            raise RuntimeError(f"no {difficulty} maze found in 5 million attempts")
        row = new_row
    return MazeSet(questions, answers, ratings, [f"hrm-maze-{difficulty}"] * n)


def _generate_chunk(rng: np.random.Generator, difficulty: str, n: int) -> MazeSet:
    return generate(rng, difficulty, n)


def generate_parallel(
    rng: np.random.Generator, difficulty: str, n: int, workers: int | None = None
) -> MazeSet:
    """``generate`` spread over processes.

    The work is cut into chunks of ``PARALLEL_CHUNK`` mazes, each drawn from its own child
    generator (``rng.spawn``), so the result depends on ``rng``'s state only, never on
    ``workers``. It differs from ``generate(rng, ...)`` with the same generator.

    Args:
        rng: the parent generator (spawning children advances its seed sequence).
        difficulty: ``easy``, ``medium`` or ``hard``.
        n: how many mazes.
        workers: processes to use (default: all cores; 1 runs in this process).
    """
    _check_tier(difficulty)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    sizes = [min(PARALLEL_CHUNK, n - start) for start in range(0, n, PARALLEL_CHUNK)]
    if not sizes:
        return generate(rng, difficulty, 0)
    children = rng.spawn(len(sizes))
    workers = max(1, min(workers or os.cpu_count() or 1, len(sizes)))
    if workers == 1:
        parts = [generate(c, difficulty, k) for c, k in zip(children, sizes, strict=True)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_generate_chunk, children, [difficulty] * len(sizes), sizes))
    return MazeSet(
        np.concatenate([p.questions for p in parts]),
        np.concatenate([p.answers for p in parts]),
        np.concatenate([p.ratings for p in parts]),
        [s for p in parts for s in p.sources],
    )


# --------------------------------------------------------------------------- augmentation


def _dihedral_index() -> np.ndarray:
    # Row k is the gather index that applies transform k to a flat grid: k = 0..3 rotate by
    # k quarter turns, k = 4..7 transpose first and then rotate by k - 4 quarter turns.
    cells = np.arange(SEQ_LEN).reshape(SIDE, SIDE)
    out = []
    for k in range(8):
        g = cells.T if k >= 4 else cells
        out.append(np.rot90(g, k % 4).reshape(SEQ_LEN))
    return np.stack(out)


_DIHEDRAL = _dihedral_index()  # (8, S)
# Rotations by k and by 4 - k undo each other; every reflection (k >= 4) is its own inverse.
_DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral_index() -> np.ndarray:
    """(8, S) int64: row k gathers transform k of a flat grid (``grid[index[k]]`` is
    ``dihedral(grid, k)``); row 0 is the identity."""
    return _DIHEDRAL.astype(np.int64)


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or not 0 <= k < 8:
        raise ValueError(f"dihedral transform k must be an integer in 0..7, got {k!r}")
    return int(k)


def dihedral(grids: np.ndarray, k: int) -> np.ndarray:
    """Apply one of the 8 symmetries of the square to (S,) or (B, S) grids.

    ``k`` in 0..3 rotates by k quarter turns; 4..7 transposes, then rotates by k - 4. Walls,
    S, G and path cells move together, so a valid question/answer pair stays valid.
    """
    grids = np.asarray(grids)
    if grids.shape[-1:] != (SEQ_LEN,) or grids.ndim not in (1, 2):
        raise ValueError(
            f"grids must have shape (S,) or (B, S) with S = {SEQ_LEN}, got {grids.shape}"
        )
    return grids[..., _DIHEDRAL[_check_k(k)]]


def invert_dihedral(grids: np.ndarray, k: int) -> np.ndarray:
    """Undo ``dihedral(grids, k)``."""
    return dihedral(grids, _DIHEDRAL_INVERSE[_check_k(k)])


def augment(
    rng: np.random.Generator, questions: np.ndarray, answers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random dihedral transform per row, the same to a question and its answer.

    Args:
        rng: draws the transform of each row.
        questions: (B, S) or (S,) grids.
        answers: grids of the same shape.

    Returns:
        (questions, answers) transformed, same shapes.
    """
    q = np.asarray(questions)
    a = np.asarray(answers)
    if q.shape != a.shape:
        raise ValueError(f"questions and answers must have one shape, got {q.shape} and {a.shape}")
    if q.ndim == 1:
        k = int(rng.integers(0, 8))
        return dihedral(q, k), dihedral(a, k)
    if q.ndim != 2 or q.shape[1] != SEQ_LEN:
        raise ValueError(f"questions must have shape (B, {SEQ_LEN}), got {q.shape}")
    index = _DIHEDRAL[rng.integers(0, 8, size=len(q))]  # (B, S)
    return np.take_along_axis(q, index, axis=1), np.take_along_axis(a, index, axis=1)


# --------------------------------------------------------------------------- tokens


def encode(grids: np.ndarray) -> np.ndarray:
    """Model tokens (int64, same shape) of grids; the value is the token.

    Raises:
        ValueError: for values outside 0..5 or non-integer input.
    """
    return checked_tokens(grids, VOCAB_SIZE, "maze values", np.int64)


def decode(tokens: np.ndarray) -> np.ndarray:
    """Grids (uint8, same shape) from model tokens.

    Raises:
        ValueError: for tokens outside 0..5 or non-integer input.
    """
    return checked_tokens(tokens, VOCAB_SIZE, "maze tokens", np.uint8)


# --------------------------------------------------------------------------- files


def write_csv(path: str | os.PathLike[str], mazes: MazeSet) -> None:
    """Write mazes in the public Maze-Hard format: header ``source,question,answer,rating``.

    The file appears whole or not at all (:mod:`hrm_env.fileio`).

    Raises:
        WriteError: naming ``path`` when it cannot be written.
    """
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_CSV_HEADER)
        for source, q, a, r in zip(
            mazes.sources, mazes.questions, mazes.answers, mazes.ratings, strict=True
        ):
            writer.writerow((source, format(q), format(a), int(r)))


def read_csv(path: str | os.PathLike[str]) -> MazeSet:
    """Read a maze CSV (header ``source,question,answer,rating``; only ``question`` is required).

    Every question is validated. Missing answers are solved and missing ratings are set to the
    shortest-path length; a given rating is kept as written. A given answer must be a valid
    shortest path of its question.

    Raises:
        ValueError: naming the file, the line and the problem (or that it is not a text file).
    """
    path = Path(path)
    questions: list[np.ndarray] = []
    answers: list[np.ndarray | None] = []
    ratings: list[int | None] = []
    sources: list[str] = []
    lines: list[int] = []
    expected = f"a maze CSV with the header {','.join(_CSV_HEADER)}"
    with open_text(path, expected, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "question" not in reader.fieldnames:
            raise ValueError(
                f"{path}: expected a CSV header with a 'question' column "
                f"({','.join(_CSV_HEADER)}), got {reader.fieldnames}"
            )
        for record in reader:
            line = reader.line_num
            try:
                q = parse(record["question"] or "")
                validate(q)
                text = (record.get("answer") or "").strip("\r\n")
                a = parse(text) if text else None
                rating_text = (record.get("rating") or "").strip()
                rating = int(float(rating_text)) if rating_text else None
            except ValueError as err:
                raise ValueError(f"{at_line(path, line)}: {err}") from None
            questions.append(q)
            answers.append(a)
            ratings.append(rating)
            sources.append(record.get("source") or path.stem)
            lines.append(line)
    if not questions:
        empty = np.empty((0, SEQ_LEN), dtype=np.uint8)
        return MazeSet(empty, empty.copy(), np.empty(0, dtype=np.int32), [])
    q_arr = np.stack(questions)
    solved, lengths = _kernels().solve_batch(q_arr)
    a_arr = np.stack([s if a is None else a for s, a in zip(solved, answers, strict=True)])
    ok = _kernels().check_batch(q_arr, a_arr)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"{at_line(path, lines[row])}: the answer does not mark a shortest path from S to G"
        )
    r_arr = np.array(
        [int(n) if r is None else r for r, n in zip(ratings, lengths, strict=True)],
        dtype=np.int32,
    )
    return MazeSet(q_arr, a_arr, r_arr, sources)


def load(path: str | os.PathLike[str]) -> MazeSet:
    """Read a maze file by its suffix (``.csv``).

    Raises:
        ValueError: for an unknown suffix or malformed content.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    raise ValueError(f"cannot read mazes from {os.fspath(path)!r}: expected a .csv file")
