"""Tests of hrm_env.puzzles.maze: formats, validation, BFS, the shortest-path checker, the
generator, dihedral augmentation, CSV round trips and tokens."""

from __future__ import annotations

import re
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_env.puzzles import maze
from hrm_env.puzzles.maze import GOAL, OPEN, PATH, SEQ_LEN, SIDE, START, WALL

FAST = settings(max_examples=25, deadline=None)


def idx(row: int, col: int) -> int:
    return row * SIDE + col


def walled() -> np.ndarray:
    """A maze that is all wall, to carve small hand-made regions into."""
    return np.full(SEQ_LEN, WALL, dtype=np.uint8)


def room(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """All wall except an open rectangle (inclusive corners)."""
    g = walled().reshape(SIDE, SIDE)
    g[top : bottom + 1, left : right + 1] = OPEN
    return g.reshape(SEQ_LEN)


def mark(question: np.ndarray, cells: list[tuple[int, int]]) -> np.ndarray:
    answer = question.copy()
    for r, c in cells:
        answer[idx(r, c)] = PATH
    return answer


def reference_length(grid: np.ndarray) -> int:
    """Plain-Python BFS, independent of the numba kernels."""
    g = grid.reshape(SIDE, SIDE)
    (sr,), (sc,) = np.nonzero(g == START)
    (gr,), (gc,) = np.nonzero(g == GOAL)
    dist = {(int(sr), int(sc)): 0}
    todo = deque([(int(sr), int(sc))])
    while todo:
        r, c = todo.popleft()
        if (r, c) == (gr, gc):
            return dist[(r, c)]
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < SIDE and 0 <= nc < SIDE and g[nr, nc] != WALL and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                todo.append((nr, nc))
    return -1


@pytest.fixture(scope="module")
def hard() -> maze.MazeSet:
    return maze.generate(np.random.default_rng(1234), "hard", 24)


# --------------------------------------------------------------------------- formats


@FAST
@given(st.text(alphabet=maze.CHARS, min_size=SEQ_LEN, max_size=SEQ_LEN))
def test_parse_format_round_trip(text: str) -> None:
    grid = maze.parse(text)
    assert grid.shape == (SEQ_LEN,) and grid.dtype == np.uint8
    assert maze.format(grid) == text
    assert np.array_equal(maze.parse(maze.format(grid, rows=True)), grid)


def test_parse_values_follow_charset() -> None:
    text = "#", " ", "S", "G", "o"
    grid = maze.parse("".join(text) + "#" * (SEQ_LEN - 5))
    assert grid[:5].tolist() == [WALL, OPEN, START, GOAL, PATH]
    assert maze.parse("".join(text) + "#" * (SEQ_LEN - 5) + "\n")[:5].tolist() == grid[:5].tolist()


# --------------------------------------------------------------------------- malformed input


def _with(grid: np.ndarray, **cells: int) -> str:
    g = grid.copy()
    for name, value in cells.items():
        r, c = (int(x) for x in name[1:].split("_"))
        g[idx(r, c)] = value
    return maze.format(g)


_OPEN_ROOM = room(0, 0, 4, 4)
_GOOD = _with(_OPEN_ROOM, p0_0=START, p4_4=GOAL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_GOOD[:-1], r"900 characters \(30x30\), got 899"),
        (_GOOD + " ", r"got 901"),
        (
            _GOOD[:17] + "x" + _GOOD[18:],
            r"bad maze character 'x' at position 17 \(row 0, column 17\)",
        ),
        (_with(_OPEN_ROOM, p0_0=START, p1_1=START, p4_4=GOAL), r"found 2 S and 1 G"),
        (_with(_OPEN_ROOM, p0_0=START), r"found 1 S and 0 G"),
        (_with(_OPEN_ROOM, p0_0=GOAL, p4_4=GOAL), r"found 0 S and 2 G"),
        (_with(_OPEN_ROOM, p0_0=START, p0_1=PATH, p4_4=GOAL), r"must not contain path cells 'o'"),
        (_with(_OPEN_ROOM, p0_0=START, p10_10=GOAL), r"no path from S at .* to G at"),
    ],
    ids=["short", "long", "bad-char", "two-S", "no-G", "no-S", "path-cell", "no-path"],
)
def test_validate_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        maze.validate(text)


def test_validate_arrays_names_the_problem() -> None:
    good = maze.parse(_GOOD)
    maze.validate(good)
    maze.validate(good.reshape(SIDE, SIDE))
    with pytest.raises(ValueError, match=r"900 cells .* shape \(899,\)"):
        maze.validate(good[:-1])
    bad = good.astype(np.int64)
    bad[40] = 9
    with pytest.raises(ValueError, match=r"token 9 at position 40 .* outside 0..5"):
        maze.validate(bad)
    padded = good.copy()
    padded[3] = 0
    with pytest.raises(ValueError, match=r"bad maze token 0 at position 3"):
        maze.validate(padded)
    with pytest.raises(ValueError, match=r"integer tokens"):
        maze.validate(good.astype(np.float32))


def test_solve_rejects_unsolvable_and_length_reports_minus_one() -> None:
    blocked = _with(_OPEN_ROOM, p0_0=START, p10_10=GOAL)
    with pytest.raises(ValueError, match="no path"):
        maze.solve(blocked)
    assert maze.shortest_path_length(blocked) == -1
    with pytest.raises(ValueError, match="exactly one start"):
        maze.shortest_path_length(_with(_OPEN_ROOM, p0_0=START))


# --------------------------------------------------------------------------- BFS and solving


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
def test_shortest_length_matches_plain_bfs(seed: int, wall_fraction: float) -> None:
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random(SEQ_LEN) < wall_fraction, WALL, OPEN).astype(np.uint8)
    s, g = rng.choice(SEQ_LEN, size=2, replace=False)
    grid[s], grid[g] = START, GOAL
    length = maze.shortest_path_length(grid)
    assert length == reference_length(grid)
    if length > 0:
        answer = maze.solve(grid)
        assert np.count_nonzero(answer == PATH) == length - 1
        assert maze.is_valid_shortest_path(grid, answer)
        assert np.array_equal(maze.solve(grid), answer)  # deterministic tie-break


def test_solve_in_open_room() -> None:
    q = maze.parse(_GOOD)
    assert maze.shortest_path_length(q) == 8
    answer = maze.solve(q)
    assert np.count_nonzero(answer == PATH) == 7
    assert answer[idx(0, 0)] == START and answer[idx(4, 4)] == GOAL
    assert np.array_equal(answer[answer != PATH], q[answer != PATH])


# --------------------------------------------------------------------------- the checker


def _detour_room() -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
    """A 3x6 room with S top-left and G bottom-right, and two different shortest routes."""
    q = room(5, 5, 7, 10)
    q[idx(5, 5)], q[idx(7, 10)] = START, GOAL
    over_then_down = [(5, c) for c in range(6, 11)] + [(6, 10)]
    down_then_over = [(6, 5), (7, 5)] + [(7, c) for c in range(6, 10)]
    return q, over_then_down, down_then_over


def test_closest_shortest_path_follows_the_scores_among_tied_paths() -> None:
    q, a, b = _detour_room()
    for route in (a, b):
        scores = np.where(mark(q, route) == PATH, 2.0, -1.0)
        answers, lengths = maze.closest_shortest_paths(q, scores)
        assert lengths.tolist() == [7]
        assert np.array_equal(answers[0], mark(q, route))
    # Scores that favour cells off every shortest path cannot pull the answer off one.
    scores = np.where(q == OPEN, 5.0, 0.0)
    answers, _ = maze.closest_shortest_paths(q, scores)
    assert maze.is_valid_shortest_path(q, answers[0])


@FAST
@given(st.integers(0, 2**32 - 1), st.sampled_from(maze.TIERS))
def test_closest_shortest_path_is_valid_and_beats_every_frame_of_the_solver(
    seed: int, tier: str
) -> None:
    rng = np.random.default_rng(seed)
    m = maze.generate(rng, tier, 3)
    scores = rng.normal(size=m.questions.shape)
    answers, lengths = maze.closest_shortest_paths(m.questions, scores)
    np.testing.assert_array_equal(lengths, m.ratings)
    assert maze.check_batch(m.questions, answers).all()
    best = (scores * (answers == PATH)).sum(axis=1)
    for k in range(8):  # the solver's path in each frame: 8 (often different) shortest paths
        other = maze.invert_dihedral(maze.solve_batch(maze.dihedral(m.questions, k))[0], k)
        assert (best >= (scores * (other == PATH)).sum(axis=1) - 1e-9).all()
    # Scores that mark the solver's own path give it back.
    own = np.where(m.answers == PATH, 1.0, -1.0)
    np.testing.assert_array_equal(maze.closest_shortest_paths(m.questions, own)[0], m.answers)


def test_shortest_path_cells_is_the_rectangle_between_corners_of_a_room() -> None:
    q, a, b = _detour_room()
    cells = maze.shortest_path_cells(q)
    # In an open room every cell of the rectangle spanned by S and G is on some shortest path;
    # both routes lie inside it.
    room_cells = {idx(r, c) for r in range(5, 8) for c in range(5, 11)}
    assert set(np.flatnonzero(cells).tolist()) == room_cells
    for route in (a, b):
        assert cells[[idx(r, c) for r, c in route]].all()
    # Wall off the lower row: only the top route's cells (and the column down to G) are left.
    lower_walled = q.copy()
    lower_walled[[idx(7, c) for c in range(5, 10)]] = maze.WALL
    lower_walled[[idx(6, c) for c in range(5, 10)]] = maze.WALL
    top = {idx(5, 5), idx(7, 10), *(idx(r, c) for r, c in a)}
    assert set(np.flatnonzero(maze.shortest_path_cells(lower_walled)).tolist()) == top
    blocked = maze.parse(_with(_OPEN_ROOM, p0_0=START, p10_10=GOAL))
    assert not maze.shortest_path_cells(blocked).any()


def test_closest_shortest_path_rejects_bad_scores_and_reports_unsolvable() -> None:
    q, _, _ = _detour_room()
    with pytest.raises(ValueError, match="scores must have the questions' shape"):
        maze.closest_shortest_paths(q, np.zeros(10))
    with pytest.raises(ValueError, match="finite"):
        maze.closest_shortest_paths(q, np.full(SEQ_LEN, np.nan))
    blocked = maze.parse(_with(_OPEN_ROOM, p0_0=START, p10_10=GOAL))
    answers, lengths = maze.closest_shortest_paths(blocked, np.zeros(SEQ_LEN))
    assert lengths.tolist() == [-1] and np.array_equal(answers[0], blocked)


def test_equal_length_alternatives_both_pass() -> None:
    q, a, b = _detour_room()
    assert maze.shortest_path_length(q) == 7
    first, second = mark(q, a), mark(q, b)
    assert not np.array_equal(first, second)
    assert maze.is_valid_shortest_path(q, first)
    assert maze.is_valid_shortest_path(q, second)
    assert maze.check_batch(np.stack([q, q]), np.stack([first, second])).all()


@FAST
@given(
    st.tuples(st.integers(0, SIDE - 1), st.integers(0, SIDE - 1)),
    st.tuples(st.integers(0, SIDE - 1), st.integers(0, SIDE - 1)),
    st.randoms(use_true_random=False),
)
def test_every_staircase_path_in_an_open_grid_passes(start, goal, random) -> None:
    """In a wall-free grid every monotone path from S to G is a shortest path: all must pass."""
    if start == goal:
        return
    q = np.full(SEQ_LEN, OPEN, dtype=np.uint8)
    q[idx(*start)], q[idx(*goal)] = START, GOAL
    dr, dc = goal[0] - start[0], goal[1] - start[1]
    moves = [(np.sign(dr), 0)] * abs(dr) + [(0, np.sign(dc))] * abs(dc)
    random.shuffle(moves)
    r, c = start
    cells = []
    for mr, mc in moves[:-1]:
        r, c = r + mr, c + mc
        cells.append((int(r), int(c)))
    assert maze.is_valid_shortest_path(q, mark(q, cells))


def test_wrong_predictions_fail() -> None:
    q, a, _ = _detour_room()
    good = mark(q, a)
    assert maze.is_valid_shortest_path(q, good)

    longer = room(5, 5, 7, 10)
    longer[idx(5, 5)], longer[idx(7, 10)] = START, GOAL
    # S down to row 7 and back up: reaches G but with 2 extra moves.
    detour = [(5, 6), (6, 6), (7, 6), (7, 7), (6, 7), (5, 7), (5, 8), (5, 9), (5, 10), (6, 10)]
    broken = good.copy()
    broken[idx(5, 8)] = OPEN
    stray = good.copy()
    stray[idx(7, 7)] = PATH
    no_start = good.copy()
    no_start[idx(5, 5)] = PATH
    moved_wall = good.copy()
    moved_wall[idx(0, 0)] = OPEN
    new_wall = good.copy()
    new_wall[idx(6, 6)] = WALL
    nothing = q.copy()
    cases = {
        "longer": mark(longer, detour),
        "broken": broken,
        "stray": stray,
        "no-start": no_start,
        "moved-wall": moved_wall,
        "new-wall": new_wall,
        "empty": nothing,
    }
    for name, prediction in cases.items():
        assert not maze.is_valid_shortest_path(q, prediction), name
    ok = maze.check_batch(np.stack([q] * len(cases)), np.stack(list(cases.values())))
    assert not ok.any()


def test_path_through_a_wall_fails() -> None:
    # A corridor bent around a wall: the straight line through the wall is shorter but illegal.
    q = walled().reshape(SIDE, SIDE)
    q[2, 2:9] = OPEN  # row 2, columns 2..8
    q[2:5, 2] = OPEN
    q[2:5, 8] = OPEN
    q[4, 2:9] = OPEN
    q[4, 5] = WALL
    q = q.reshape(SEQ_LEN)
    q[idx(4, 2)], q[idx(4, 8)] = START, GOAL
    assert maze.shortest_path_length(q) == 10
    around = [(3, 2), (2, 2), (2, 3), (2, 4), (2, 5), (2, 6), (2, 7), (2, 8), (3, 8)]
    assert maze.is_valid_shortest_path(q, mark(q, around))
    through = [(4, c) for c in range(3, 8)]
    assert not maze.is_valid_shortest_path(q, mark(q, through))


def test_checker_is_false_for_unsolvable_or_out_of_vocab() -> None:
    blocked = maze.parse(_with(_OPEN_ROOM, p0_0=START, p10_10=GOAL))
    assert not maze.is_valid_shortest_path(blocked, blocked)
    q, a, _ = _detour_room()
    good = mark(q, a).astype(np.int64)
    bad = good.copy()
    bad[idx(29, 29)] = 17
    assert maze.check_batch(np.stack([q, q]), np.stack([good, bad])).tolist() == [True, False]
    with pytest.raises(ValueError, match="shape"):
        maze.check_batch(np.stack([q, q]), good[None])


@FAST
@given(st.data())
def test_damaged_reference_paths_fail(hard: maze.MazeSet, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(hard) - 1))
    q, a = hard.questions[i], hard.answers[i]
    on_path = np.flatnonzero(a == PATH)
    off_path = np.flatnonzero(a == OPEN)
    removed = a.copy()
    removed[data.draw(st.sampled_from(on_path.tolist()))] = OPEN
    added = a.copy()
    added[data.draw(st.sampled_from(off_path.tolist()))] = PATH
    assert not maze.is_valid_shortest_path(q, removed)
    assert not maze.is_valid_shortest_path(q, added)


# --------------------------------------------------------------------------- the generator


def test_generated_hard_mazes(hard: maze.MazeSet) -> None:
    assert hard.questions.shape == hard.answers.shape == (24, SEQ_LEN)
    assert hard.questions.dtype == np.uint8
    assert (hard.ratings > 110).all()
    assert maze.check_batch(hard.questions, hard.answers).all()
    for q, a, r in zip(hard.questions, hard.answers, hard.ratings, strict=True):
        maze.validate(q)
        assert maze.shortest_path_length(q) == r == reference_length(q)
        assert np.array_equal(maze.solve(q), a)
        assert np.count_nonzero(a == PATH) == r - 1
        walls = np.count_nonzero(q == WALL)
        assert 0.3 * SEQ_LEN <= walls <= 0.5 * SEQ_LEN
        assert maze.tier_of(int(r)) == "hard"


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_hard_maze_is_long_and_checked(seed: int) -> None:
    m = maze.generate(np.random.default_rng(seed), "hard", 3)
    assert (m.ratings > 110).all()
    assert (maze.solve_batch(m.questions)[1] == m.ratings).all()
    assert maze.check_batch(m.questions, m.answers).all()


@pytest.mark.parametrize("tier", ["easy", "medium"])
def test_easier_tiers_stay_in_their_range(tier: str) -> None:
    lo, hi = maze.TIER_LENGTHS[tier]
    m = maze.generate(np.random.default_rng(7), tier, 40)
    assert ((m.ratings >= lo) & (m.ratings <= hi)).all()
    assert maze.check_batch(m.questions, m.answers).all()
    assert {maze.tier_of(int(r)) for r in m.ratings} == {tier}


def test_generation_is_seeded_by_the_generator_only() -> None:
    a = maze.generate(np.random.default_rng(5), "medium", 6)
    b = maze.generate(np.random.default_rng(5), "medium", 6)
    c = maze.generate(np.random.default_rng(6), "medium", 6)
    assert np.array_equal(a.questions, b.questions) and np.array_equal(a.answers, b.answers)
    assert not np.array_equal(a.questions, c.questions)
    assert len({maze.format(q) for q in a.questions}) == 6


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown maze difficulty 'extreme'"):
        maze.generate(np.random.default_rng(0), "extreme", 1)
    with pytest.raises(ValueError, match="non-negative"):
        maze.generate(np.random.default_rng(0), "easy", -1)
    assert len(maze.generate(np.random.default_rng(0), "easy", 0)) == 0
    with pytest.raises(ValueError, match="below every tier"):
        maze.tier_of(3)


def test_generate_parallel_does_not_depend_on_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maze, "PARALLEL_CHUNK", 4)
    one = maze.generate_parallel(np.random.default_rng(11), "medium", 10, workers=1)
    two = maze.generate_parallel(np.random.default_rng(11), "medium", 10, workers=2)
    assert np.array_equal(one.questions, two.questions)
    assert np.array_equal(one.ratings, two.ratings)
    assert len(one) == 10 and len({maze.format(q) for q in one.questions}) == 10
    assert maze.check_batch(two.questions, two.answers).all()


# --------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("k", range(8))
def test_dihedral_keeps_validity_and_inverts(hard: maze.MazeSet, k: int) -> None:
    q = maze.dihedral(hard.questions, k)
    a = maze.dihedral(hard.answers, k)
    assert maze.check_batch(q, a).all()
    assert np.array_equal(maze.solve_batch(q)[1], hard.ratings)
    assert np.array_equal(maze.invert_dihedral(q, k), hard.questions)
    assert np.array_equal(maze.dihedral(hard.questions[0], k), q[0])


def test_dihedral_transforms_are_the_eight_distinct_symmetries(hard: maze.MazeSet) -> None:
    q = hard.questions[0]
    images = {maze.dihedral(q, k).tobytes() for k in range(8)}
    assert len(images) == 8
    square = q.reshape(SIDE, SIDE)
    assert np.array_equal(maze.dihedral(q, 1).reshape(SIDE, SIDE), np.rot90(square))
    assert np.array_equal(maze.dihedral(q, 4).reshape(SIDE, SIDE), square.T)
    with pytest.raises(ValueError, match="0..7"):
        maze.dihedral(q, 8)


def test_augment_applies_one_transform_per_pair(hard: maze.MazeSet) -> None:
    q, a = maze.augment(np.random.default_rng(3), hard.questions, hard.answers)
    assert q.shape == hard.questions.shape
    assert maze.check_batch(q, a).all()
    # Each pair must be one symmetry of the original pair, the same one for both grids.
    for i in range(len(q)):
        ks = [k for k in range(8) if np.array_equal(maze.dihedral(hard.questions[i], k), q[i])]
        assert any(np.array_equal(maze.dihedral(hard.answers[i], k), a[i]) for k in ks)
    q2, _ = maze.augment(np.random.default_rng(3), hard.questions, hard.answers)
    assert np.array_equal(q, q2)


# --------------------------------------------------------------------------- files


def test_csv_round_trip(tmp_path, hard: maze.MazeSet) -> None:
    path = tmp_path / "sub" / "mazes.csv"
    maze.write_csv(path, hard)
    lines = path.read_text().splitlines()
    assert lines[0] == "source,question,answer,rating"
    source, question, answer, rating = lines[1].split(",")
    assert len(question) == len(answer) == SEQ_LEN
    assert "S" in answer and "G" in answer and int(rating) == hard.ratings[0]
    back = maze.load(path)
    assert np.array_equal(back.questions, hard.questions)
    assert np.array_equal(back.answers, hard.answers)
    assert np.array_equal(back.ratings, hard.ratings)
    assert back.sources == hard.sources


def test_csv_with_questions_only_is_solved(tmp_path, hard: maze.MazeSet) -> None:
    path = tmp_path / "q.csv"
    path.write_text("question\n" + "".join(maze.format(q) + "\n" for q in hard.questions[:3]))
    back = maze.read_csv(path)
    assert np.array_equal(back.answers, hard.answers[:3])
    assert np.array_equal(back.ratings, hard.ratings[:3])


def test_csv_errors_name_file_line_and_problem(tmp_path, hard: maze.MazeSet) -> None:
    good = maze.MazeSet(hard.questions[:2], hard.answers[:2], hard.ratings[:2], ["a", "b"])
    path = tmp_path / "m.csv"
    maze.write_csv(path, good)
    text = path.read_text().splitlines()

    short = text[:2] + [text[2].replace(",", ",#", 1)]
    path.write_text("\n".join(short) + "\n")
    with pytest.raises(ValueError, match=r"m.csv:3: a maze must have 900 characters"):
        maze.read_csv(path)

    wrong = maze.MazeSet(hard.questions[:1], hard.questions[:1], hard.ratings[:1], ["x"])
    maze.write_csv(path, wrong)
    with pytest.raises(ValueError, match=r"m.csv:2: the answer does not mark a shortest path"):
        maze.read_csv(path)

    path.write_text("source,puzzle\nx,y\n")
    with pytest.raises(ValueError, match="'question' column"):
        maze.read_csv(path)

    with pytest.raises(ValueError, match=r"expected a \.csv file"):
        maze.load(tmp_path / "m.txt")


def test_a_binary_file_is_named(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"source,question\n" + bytes(range(128, 256)))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a UTF-8 text file"):
        maze.load(path)


# --------------------------------------------------------------------------- tokens


def test_encode_decode(hard: maze.MazeSet) -> None:
    tokens = maze.encode(hard.answers)
    assert tokens.dtype == np.int64 and tokens.max() == PATH
    assert np.array_equal(maze.decode(tokens), hard.answers)
    assert maze.decode(tokens).dtype == np.uint8
    with pytest.raises(ValueError, match=r"0..5"):
        maze.decode(np.array([0, 6]))
    with pytest.raises(ValueError, match=r"0..5"):
        maze.encode(np.array([-1, 2]))
    with pytest.raises(ValueError, match="integers"):
        maze.decode(np.array([1.5]))
    assert maze.VOCAB_SIZE == 6 and maze.SEQ_LEN == SIDE * SIDE == 900


def _plain_distances(grid: np.ndarray, source: int) -> np.ndarray:
    """Plain-Python BFS move counts from ``source`` to every cell (-1: wall or unreachable)."""
    g = grid.reshape(SIDE, SIDE)
    dist = np.full((SIDE, SIDE), -1)
    r0, c0 = divmod(int(source), SIDE)
    dist[r0, c0] = 0
    todo = deque([(r0, c0)])
    while todo:
        r, c = todo.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < SIDE and 0 <= nc < SIDE and g[nr, nc] != WALL and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                todo.append((nr, nc))
    return dist.reshape(SEQ_LEN)


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.6))
def test_endpoint_distances_match_plain_bfs(seed: int, wall_fraction: float) -> None:
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random(SEQ_LEN) < wall_fraction, WALL, OPEN).astype(np.uint8)
    s, g = rng.choice(SEQ_LEN, size=2, replace=False)
    grid[s], grid[g] = START, GOAL
    from_s, to_g = maze.endpoint_distances(grid[None])
    assert np.array_equal(from_s[0], _plain_distances(grid, s))
    assert np.array_equal(to_g[0], _plain_distances(grid, g))
    assert to_g[0, s] == maze.shortest_path_length(grid)


def test_endpoint_distances_are_all_unknown_without_one_start_and_goal() -> None:
    grid = room(0, 0, 3, 3)
    grid[idx(0, 0)] = START  # no goal
    from_s, to_g = maze.endpoint_distances(grid[None])
    assert (from_s == -1).all() and (to_g == -1).all()
