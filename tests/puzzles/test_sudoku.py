"""Sudoku domain: formats, validation errors, solver against a reference, generator tiers,
augmentations, bundled banks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrm_env.puzzles import sudoku

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOP1465_FIRST = "4...3.......6..8..........1....5..9..8....6...7.2........1.27..5.3....4.9........"


# ---------------------------------------------------------------------------------------------
# A slow, obviously correct reference: plain backtracking that counts solutions up to 2.
# ---------------------------------------------------------------------------------------------


def reference_count(grid: np.ndarray) -> tuple[int, list[int] | None]:
    size = sudoku._side(grid.size)
    b = int(round(size**0.5))
    cells = [int(v) for v in grid]

    def allowed(i: int, d: int) -> bool:
        r, c = divmod(i, size)
        for j in range(size * size):
            if j == i or cells[j] != d:
                continue
            rj, cj = divmod(j, size)
            if rj == r or cj == c or (rj // b == r // b and cj // b == c // b):
                return False
        return True

    if any(v and not allowed(i, v) for i, v in enumerate(cells)):
        return 0, None
    found: list[list[int]] = []

    def search() -> None:
        if len(found) >= 2:
            return
        try:
            i = cells.index(0)
        except ValueError:
            found.append(list(cells))
            return
        for d in range(1, size + 1):
            if allowed(i, d):
                cells[i] = d
                search()
                cells[i] = 0
                if len(found) >= 2:
                    return

    search()
    return len(found), (found[0] if found else None)


def is_valid_solution(puzzle: np.ndarray, solution: np.ndarray) -> bool:
    size = sudoku._side(puzzle.size)
    units = sudoku._units(size)
    digits = np.arange(1, size + 1)
    full = all(np.array_equal(np.sort(solution[u]), digits) for u in units)
    return full and bool(np.all((puzzle == 0) | (puzzle == solution)))


def solved_grid(rng: np.random.Generator, size: int = 9) -> np.ndarray:
    """A random valid solution: the first bank answer (or a mini answer) under a random symmetry."""
    base = sudoku.parse(
        "1234341221434321" if size == 4 else sudoku.format(sudoku.load_bank("test").answers[0])
    )
    return sudoku.apply_transform(base, sudoku.random_transform(rng, size))


# ---------------------------------------------------------------------------------------------
# Text formats
# ---------------------------------------------------------------------------------------------


def test_parse_and_format_round_trip_both_blank_styles():
    grid = sudoku.parse(TOP1465_FIRST)
    assert grid.dtype == np.uint8 and grid.shape == (81,)
    assert grid[0] == 4 and grid[1] == 0 and np.count_nonzero(grid) == 18
    assert sudoku.format(grid) == TOP1465_FIRST
    assert np.array_equal(sudoku.parse(sudoku.format(grid, blank="0")), grid)
    # A grid written over nine lines parses the same.
    lines = "\n".join(TOP1465_FIRST[i : i + 9] for i in range(0, 81, 9))
    assert np.array_equal(sudoku.parse(lines), grid)
    mini = sudoku.parse("1.3..4.2.1..4..3")
    assert mini.shape == (16,) and sudoku.format(mini) == "1.3..4.2.1..4..3"


@pytest.mark.parametrize(
    ("text", "size", "match"),
    [
        ("123", None, r"81 cells \(9x9\) or 16 \(4x4 mini\), got 3 characters"),
        ("." * 80, 9, r"9x9 Sudoku must have 81 cells, got 80 characters"),
        ("." * 81, 4, r"4x4 Sudoku must have 16 cells, got 81 characters"),
        (
            "....x" + "." * 76,
            None,
            r"bad character 'x' in puzzle at position 5 \(row 1, column 5\)",
        ),
        ("...5" + "." * 12, None, r"bad character '5' in puzzle at position 4 \(row 1, column 4\)"),
        ("." * 40 + "é" + "." * 40, None, r"bad character 'é'"),
    ],
)
def test_parse_rejects_malformed_text(text, size, match):
    with pytest.raises(ValueError, match=match):
        sudoku.parse(text, size)


# ---------------------------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------------------------


def with_cells(base: str, **cells: str) -> str:
    chars = list(base)
    for key, value in cells.items():
        r, c = int(key[1]), int(key[2])
        chars[(r - 1) * 9 + (c - 1)] = value
    return "".join(chars)


EMPTY = "." * 81


@pytest.mark.parametrize(
    ("puzzle", "match"),
    [
        (with_cells(EMPTY, c11="5", c19="5"), r"clashing givens: digit 5 appears twice in row 1"),
        (
            with_cells(EMPTY, c14="7", c94="7"),
            r"clashing givens: digit 7 appears twice in column 4",
        ),
        (with_cells(EMPTY, c55="3", c66="3"), r"clashing givens: digit 3 appears twice in box 5"),
        # Cell (1, 9) can only be 9 by its row, but column 9 already has one: no clash, no solution.
        ("12345678." + "........9" + "." * 63, r"the puzzle has no solution"),
        (EMPTY, r"the puzzle has several solutions"),
        ("1" + "." * 15, r"the puzzle has several solutions"),
    ],
)
def test_validate_names_the_problem(puzzle, match):
    with pytest.raises(ValueError, match=match):
        sudoku.validate(puzzle)


def test_validate_rejects_bad_arrays():
    with pytest.raises(ValueError, match=r"bad value 12 in puzzle at row 1, column 2"):
        sudoku.validate(np.array([0, 12] + [0] * 79))
    with pytest.raises(ValueError, match=r"81 cells \(9x9\) or 16 \(4x4 mini\), got 80"):
        sudoku.validate(np.zeros(80, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must be integers"):
        sudoku.validate(np.zeros(81, dtype=np.float32))


def test_validate_checks_the_claimed_solution():
    puzzle = sudoku.parse(TOP1465_FIRST)
    result = sudoku.validate(puzzle)
    answer = result.solution
    assert result.n_solutions == 1 and is_valid_solution(puzzle, answer)
    assert sudoku.validate(puzzle, answer).guesses == result.guesses

    holed = answer.copy()
    holed[40] = 0
    with pytest.raises(ValueError, match=r"the solution has a blank at row 5, column 5"):
        sudoku.validate(puzzle, holed)

    # Swapping two cells of a row keeps the row valid but breaks their columns.
    swapped = answer.copy()
    swapped[[1, 2]] = swapped[[2, 1]]
    with pytest.raises(
        ValueError, match=r"the solution is not a valid grid: digit \d appears twice in column 2"
    ):
        sudoku.validate(puzzle, swapped)

    # A valid grid that disagrees with the givens: relabel two digits everywhere.
    relabelled = answer.copy()
    a, b = answer[0], answer[1]
    relabelled[answer == a], relabelled[answer == b] = b, a
    with pytest.raises(
        ValueError, match=rf"the solution contradicts the given {a} at row 1, column 1"
    ):
        sudoku.validate(puzzle, relabelled)

    with pytest.raises(ValueError, match=r"bad character 'z' in solution"):
        sudoku.validate(puzzle, "z" * 81)


# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    keep=st.lists(st.booleans(), min_size=16, max_size=16),
    poke=st.none() | st.tuples(st.integers(0, 15), st.integers(1, 4)),
)
def test_solver_matches_reference_on_mini(seed, keep, poke):
    grid = solved_grid(np.random.default_rng(seed), 4)
    puzzle = np.where(np.array(keep), grid, 0).astype(np.uint8)
    if poke is not None:  # sometimes plant a wrong digit: clashes and dead ends
        puzzle[poke[0]] = poke[1]
    expected, reference = reference_count(puzzle)
    result = sudoku.solve(puzzle)
    assert result.n_solutions == expected
    if expected:
        assert is_valid_solution(puzzle, result.solution)
    if expected == 1:
        assert result.solution.tolist() == reference


@FAST
@given(seed=st.integers(0, 2**32 - 1), blanks=st.integers(10, 30), poke=st.booleans())
def test_solver_matches_reference_on_nearly_full_9x9(seed, blanks, poke):
    rng = np.random.default_rng(seed)
    grid = solved_grid(rng)
    puzzle = grid.copy()
    puzzle[rng.choice(81, blanks, replace=False)] = 0
    if poke:
        cell = int(rng.choice(np.flatnonzero(puzzle)))
        puzzle[cell] = puzzle[cell] % 9 + 1
    expected, reference = reference_count(puzzle)
    result = sudoku.solve(puzzle)
    assert result.n_solutions == expected
    if expected == 1:
        assert result.solution.tolist() == reference


def find_rectangle(grid: np.ndarray) -> list[int] | None:
    """Four cells in two rows of a band and two columns of different stacks holding a, b / b, a."""
    g = grid.reshape(9, 9)
    for r1 in range(9):
        for r2 in range(r1 + 1, (r1 // 3 + 1) * 3):
            for c1 in range(9):
                for c2 in range((c1 // 3 + 1) * 3, 9):
                    if g[r1, c1] == g[r2, c2] and g[r1, c2] == g[r2, c1]:
                        return [r1 * 9 + c1, r1 * 9 + c2, r2 * 9 + c1, r2 * 9 + c2]
    return None


def test_blanked_swappable_cells_give_exactly_two_solutions():
    rng = np.random.default_rng(7)
    for _ in range(50):
        grid = solved_grid(rng)
        cells = find_rectangle(grid)
        if cells is not None:
            break
    assert cells is not None
    puzzle = grid.copy()
    puzzle[cells] = 0
    result = sudoku.solve(puzzle)
    assert result.n_solutions == 2 == reference_count(puzzle)[0]
    with pytest.raises(ValueError, match="several solutions"):
        sudoku.validate(puzzle)
    # One of the four filled back in makes it unique again.
    puzzle[cells[0]] = grid[cells[0]]
    assert sudoku.solve(puzzle).n_solutions == 1


def test_clashing_givens_have_no_solution_in_the_solver():
    result = sudoku.solve(with_cells(EMPTY, c11="5", c19="5"))
    assert result.n_solutions == 0 and result.solution is None


def test_bitboard_kernel_agrees_with_generic_kernel():
    """The 9x9 fast path must make exactly the generic search's choices (same guesses)."""
    bank = sudoku.load_bank("test")
    easiest = np.argsort(bank.ratings)[:25]
    rng = np.random.default_rng(3)
    extra = []
    for _ in range(15):  # under-constrained (several solutions) and broken (none) puzzles
        grid = solved_grid(rng)
        grid[rng.choice(81, 55, replace=False)] = 0
        extra.append(grid.copy())
        grid[int(np.flatnonzero(grid)[0])] = 0
        grid[int(rng.integers(81))] = rng.integers(1, 10)
        extra.append(grid)
    puzzles = np.concatenate([bank.questions[easiest], np.stack(extra)])
    fast = sudoku.solve_batch(puzzles)
    peers, units, popcount = sudoku._tables(9)
    slow = (
        np.zeros_like(puzzles),
        np.zeros(len(puzzles), np.int64),
        np.zeros(len(puzzles), np.int64),
    )
    sudoku._kernels().solve_batch_kernel(puzzles.copy(), peers, units, popcount, 2, *slow)
    assert {0, 1, 2} <= set(fast[1].tolist())
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a, b)


def test_solve_batch_rejects_bad_shapes_and_values():
    with pytest.raises(ValueError, match=r"\(B, S\) array"):
        sudoku.solve_batch(np.zeros(81, np.uint8))
    with pytest.raises(ValueError, match=r"puzzle 1 has a value outside 0..9"):
        sudoku.solve_batch(np.stack([np.zeros(81, np.int64), np.full(81, 10)]))


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_generated_9x9_puzzles_are_unique_and_of_their_tier(seed):
    rng = np.random.default_rng(seed)
    for tier in sudoku.TIERS:
        s = sudoku.generate(rng, tier, 3)
        assert len(s) == 3 and s.questions.shape == (3, 81)
        solutions, counts, guesses = sudoku.solve_batch(s.questions)
        assert counts.tolist() == [1, 1, 1]
        assert np.array_equal(solutions, s.answers)
        assert np.array_equal(guesses, s.ratings)
        assert all(sudoku.tier_of(int(r)) == tier for r in s.ratings)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_generated_mini_puzzles_are_unique_and_of_their_tier(seed):
    rng = np.random.default_rng(seed)
    for tier in sudoku.MINI_TIERS:
        s = sudoku.generate(rng, tier, 20, size=4)
        assert s.questions.shape == (20, 16)
        for q, a in zip(s.questions, s.answers, strict=True):
            assert reference_count(q) == (1, a.tolist())
            assert sudoku.mini_tier_of(q) == tier


def test_generation_is_seeded_by_the_generator_only():
    for tier, size in (("medium", 9), ("extreme", 9), ("hard", 4)):
        a = sudoku.generate(np.random.default_rng(11), tier, 4, size=size)
        b = sudoku.generate(np.random.default_rng(11), tier, 4, size=size)
        c = sudoku.generate(np.random.default_rng(12), tier, 4, size=size)
        assert np.array_equal(a.questions, b.questions)
        assert not np.array_equal(a.questions, c.questions)


@pytest.fixture(scope="module")
def train_signatures() -> set[int]:
    return set(sudoku.signature(sudoku.load_bank("train").questions).tolist())


def test_extreme_puzzles_come_from_train_not_test(train_signatures):
    s = sudoku.generate(np.random.default_rng(5), "extreme", 20)
    assert set(sudoku.signature(s.questions).tolist()) <= train_signatures
    assert (s.ratings >= sudoku.EXTREME_MIN_RATING).all()


def test_generate_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError, match=r"unknown difficulty 'insane'.*easy, medium, hard, extreme"
    ):
        sudoku.generate(rng, "insane", 1)
    with pytest.raises(ValueError, match=r"unknown difficulty 'extreme' for 4x4"):
        sudoku.generate(rng, "extreme", 1, size=4)
    with pytest.raises(ValueError, match=r"size must be 9 or 4"):
        sudoku.generate(rng, "easy", 1, size=6)
    with pytest.raises(ValueError, match=r"never negative"):
        sudoku.tier_of(-1)


def test_tier_boundaries():
    assert [sudoku.tier_of(r) for r in (0, 1, 3, 4, 39, 40, 2000)] == [
        "easy", "medium", "medium", "hard", "hard", "extreme", "extreme",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Augmentations
# ---------------------------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([9, 4]))
def test_transform_keeps_pairs_valid_and_inverts(seed, size):
    rng = np.random.default_rng(seed)
    s = sudoku.generate(rng, "medium" if size == 9 else "hard", 2, size=size)
    t = sudoku.random_transform(rng, size)
    q = sudoku.apply_transform(s.questions, t)
    a = sudoku.apply_transform(s.answers, t)
    for qi, ai in zip(q, a, strict=True):
        assert sudoku.validate(qi, ai).n_solutions == 1
    u = sudoku.invert_transform(t)
    assert np.array_equal(sudoku.apply_transform(q, u), s.questions)
    assert np.array_equal(
        sudoku.apply_transform(s.questions[0], u),
        sudoku.apply_transform(s.questions[0], sudoku.invert_transform(t)),
    )
    # Inverting twice gives the transform back (same action on a grid).
    uu = sudoku.invert_transform(u)
    assert np.array_equal(sudoku.apply_transform(s.answers, uu), a)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_augment_changes_rows_independently_and_keeps_them_valid(seed):
    rng = np.random.default_rng(seed)
    bank = sudoku.load_bank("test")
    rows = rng.choice(len(bank), 6, replace=False)
    q, a = sudoku.augment(rng, bank.questions[rows], bank.answers[rows])
    assert q.dtype == np.uint8 and q.shape == (6, 81)
    for qi, ai in zip(q, a, strict=True):
        assert is_valid_solution(qi, ai)
    assert np.array_equal(
        np.count_nonzero(q, axis=1), np.count_nonzero(bank.questions[rows], axis=1)
    )
    # The augmentation group leaves the split signature unchanged.
    assert np.array_equal(sudoku.signature(q), sudoku.signature(bank.questions[rows]))
    one_q, one_a = sudoku.augment(rng, bank.questions[rows[0]], bank.answers[rows[0]])
    assert one_q.shape == (81,) and is_valid_solution(one_q, one_a)


def test_augment_covers_every_symmetry_kind():
    rng = np.random.default_rng(0)
    t = [sudoku.random_transform(rng, 9) for _ in range(40)]
    assert {x.transpose for x in t} == {True, False}
    assert any(not np.array_equal(x.digits, np.arange(10)) for x in t)
    # Band moves: some row permutation sends row 0 out of band 0.
    assert any(x.rows[0] >= 3 for x in t) and any(x.cols[0] >= 3 for x in t)
    for x in t:  # every row permutation keeps bands together
        assert all(len(set(x.rows[3 * k : 3 * k + 3] // 3)) == 1 for k in range(3))


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path):
    s = sudoku.generate(np.random.default_rng(1), "medium", 5)
    path = tmp_path / "puzzles.csv"
    sudoku.write_csv(path, s)
    assert path.read_text().splitlines()[0] == "source,question,answer,rating"
    back = sudoku.read_csv(path)
    assert np.array_equal(back.questions, s.questions)
    assert np.array_equal(back.answers, s.answers)
    assert np.array_equal(back.ratings, s.ratings)
    assert back.sources == s.sources
    assert np.array_equal(sudoku.load(path).questions, s.questions)


def test_csv_fills_missing_answers_and_ratings_and_reads_zero_blanks(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(f"source,question,answer,rating\n,{TOP1465_FIRST.replace('.', '0')},,\n")
    s = sudoku.read_csv(path)
    result = sudoku.validate(TOP1465_FIRST)
    assert s.sources == ["mine"]
    assert np.array_equal(s.answers[0], result.solution) and s.ratings[0] == result.guesses


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("source,puzzle\nx,1\n", r"no 'question' column"),
        (
            "source,question,answer,rating\nx,123,,\n",
            r"mine.csv:2: a 9x9 Sudoku question must have 81 characters, got 3",
        ),
        (
            "source,question,answer,rating\nx," + "." * 80 + "?,,\n",
            r"mine.csv:2: bad character '\?' in question at position 81",
        ),
        (
            "source,question,answer,rating\nx," + TOP1465_FIRST + "," + "1" * 81 + ",3\n",
            r"mine.csv:2: the answer is not a valid solved grid",
        ),
        (
            "source,question,answer,rating\nx," + TOP1465_FIRST + ",,hard\n",
            r"mine.csv:2: the rating 'hard' is not a number",
        ),
        (
            "source,question,answer,rating\nx," + "." * 81 + ",,\n",
            r"mine.csv:2: the puzzle has several solutions",
        ),
        ("", r"empty file"),
    ],
)
def test_csv_errors_name_file_line_and_problem(tmp_path, body, match):
    path = tmp_path / "mine.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=match):
        sudoku.read_csv(path)


def test_csv_rejects_an_answer_that_contradicts_its_givens(tmp_path):
    answer = sudoku.validate(TOP1465_FIRST).solution
    relabel = answer.copy()
    relabel[answer == answer[0]], relabel[answer == answer[4]] = answer[4], answer[0]
    path = tmp_path / "mine.csv"
    path.write_text(
        f"source,question,answer,rating\nx,{TOP1465_FIRST},{sudoku.format(relabel)},1\n"
    )
    with pytest.raises(
        ValueError, match=r"mine.csv:2: the answer contradicts the question's givens"
    ):
        sudoku.read_csv(path)


def test_txt_reading_skips_comments_and_blank_lines(tmp_path):
    s = sudoku.generate(np.random.default_rng(2), "easy", 3)
    lines = ["# a comment", ""] + [
        sudoku.format(q, blank="0") + "  trailing note" for q in s.questions
    ]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines[:3] + ["", "   # indented comment"] + lines[3:]) + "\n")
    assert np.array_equal(sudoku.read_txt(path), s.questions)
    loaded = sudoku.load(path)
    assert np.array_equal(loaded.answers, s.answers) and loaded.sources == ["list"] * 3
    mini = tmp_path / "mini.txt"
    one = sudoku.generate(np.random.default_rng(2), "hard", 1, size=4)
    mini.write_text(sudoku.format(one.questions[0]) + "\n")
    assert np.array_equal(sudoku.load(mini).answers, one.answers)


def test_txt_and_load_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# header\n" + TOP1465_FIRST + "\n" + TOP1465_FIRST[:-1] + "\n")
    with pytest.raises(
        ValueError, match=r"bad.txt:3: a 9x9 Sudoku puzzle must have 81 characters, got 80"
    ):
        sudoku.read_txt(path)
    unsolvable = tmp_path / "none.txt"
    unsolvable.write_text("12345678." + "........9" + "." * 63 + "\n")
    with pytest.raises(ValueError, match=r"none.txt:1: the puzzle has no solution"):
        sudoku.load(unsolvable)
    with pytest.raises(ValueError, match=r"unknown Sudoku file type '.json'"):
        sudoku.load(tmp_path / "puzzles.json")


@pytest.mark.parametrize("name", ["binary.csv", "binary.txt"])
def test_a_binary_file_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"source,question\n" + bytes(range(128, 256)))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a UTF-8 text file"):
        sudoku.load(path)


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_file_of_the_other_size_names_both_sizes(tmp_path, suffix):
    mini = sudoku.generate(np.random.default_rng(0), "hard", 2, size=4)
    nine = sudoku.generate(np.random.default_rng(0), "easy", 2)
    for puzzles, found, wanted in ((mini, "4x4 (16-cell)", 9), (nine, "9x9 (81-cell)", 4)):
        path = tmp_path / f"puzzles{suffix}"
        if suffix == ".csv":
            sudoku.write_csv(path, puzzles)
        else:
            path.write_text("".join(sudoku.format(q) + "\n" for q in puzzles.questions))
        line = 2 if suffix == ".csv" else 1
        expected = f"{path}:{line}: the file holds {found} Sudoku puzzles, but {wanted}x{wanted} "
        with pytest.raises(ValueError, match=re.escape(expected)):
            sudoku.load(path, size=wanted)
        assert len(sudoku.load(path)) == 2  # without a size, the file's own is read


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def test_tokens_round_trip_and_range_checks():
    grid = sudoku.parse(TOP1465_FIRST)
    tokens = sudoku.encode(grid[None])
    assert tokens.dtype == np.int64 and np.array_equal(tokens[0], grid)
    assert np.array_equal(sudoku.decode(tokens), grid[None])
    assert sudoku.decode(tokens).dtype == np.uint8
    with pytest.raises(ValueError, match=r"Sudoku tokens must be 0..9, got 0..10"):
        sudoku.decode(np.array([0, 10]))
    with pytest.raises(ValueError, match=r"Sudoku tokens must be 0..9, got -1..3"):
        sudoku.decode(np.array([-1, 3]))
    with pytest.raises(ValueError, match=r"tokens must be integers"):
        sudoku.decode(np.array([0.5]))
    with pytest.raises(ValueError, match=r"grid values must be 0..9"):
        sudoku.encode(np.array([11]))


# ---------------------------------------------------------------------------------------------
# Bundled banks
# ---------------------------------------------------------------------------------------------


def test_banks_load_and_test_answers_are_the_unique_solutions():
    test = sudoku.load_bank("test")
    assert sudoku.load_bank("test") is test  # cached
    assert 1000 <= len(test) <= 2000 and test.questions.shape[1] == 81
    solutions, counts, guesses = sudoku.solve_batch(test.questions)
    assert (counts == 1).all()
    assert np.array_equal(solutions, test.answers)
    assert np.array_equal(guesses, test.ratings)
    assert not test.questions.flags.writeable
    with pytest.raises(ValueError, match=r"unknown bank split 'dev'"):
        sudoku.load_bank("dev")


def test_banks_are_split_by_source_puzzle_and_test_is_the_hard_end(train_signatures):
    train, test = sudoku.load_bank("train"), sudoku.load_bank("test")
    assert len(train) > 10 * len(test)
    assert not train_signatures & set(sudoku.signature(test.questions).tolist())
    sample = np.random.default_rng(0).choice(len(train), 300, replace=False)
    for i in sample[:20]:
        assert is_valid_solution(train.questions[i], train.answers[i])
    assert np.median(test.ratings) > np.percentile(train.ratings, 95)
    assert "17_clue" not in set(test.sources)


def test_bank_packing_round_trips():
    s = sudoku.generate(np.random.default_rng(4), "hard", 6)
    back = sudoku.unpack_bank(sudoku.pack_bank(s))
    assert np.array_equal(back.questions, s.questions)
    assert np.array_equal(back.answers, s.answers)
    assert np.array_equal(back.ratings, s.ratings) and back.sources == s.sources


def test_mini_tiers_count_givens():
    solution = sudoku.parse("1234341221434321")
    order = np.random.default_rng(0).permutation(16)
    tiers = []
    for givens in range(0, 17):
        puzzle = solution.copy()
        puzzle[order[givens:]] = 0
        tiers.append(sudoku.mini_tier_of(puzzle))
    assert tiers == ["hard"] * 6 + ["medium"] * 2 + ["easy"] * 9
    with pytest.raises(ValueError, match=r"4x4 Sudoku puzzle must have 16 cells, got 81"):
        sudoku.mini_tier_of(np.zeros(81, np.uint8))
