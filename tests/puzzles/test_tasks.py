"""The task layer: one face over the domains for model, trainer and envs."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_env.puzzles import sudoku
from hrm_env.puzzles.datagen import generate_batch, write_puzzle_csv
from hrm_env.puzzles.tasks import TASK_NAMES, PuzzleBatch, get_task


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'chess'.*sudoku.*maze"):
        get_task("chess")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_sample_gives_correct_reference_answers(name):
    task = get_task(name)
    batch = task.sample(np.random.default_rng(1), 6)
    assert batch.inputs.shape == (6, task.seq_len) and batch.inputs.dtype == np.uint8
    assert batch.inputs.max() < task.vocab_size and batch.targets.max() < task.vocab_size
    assert task.is_correct(batch.inputs, batch.targets, batch.targets).all()
    # The puzzle itself is not an answer (Sudoku has blanks; a maze has no marked path).
    assert not task.is_correct(batch.inputs, batch.inputs, batch.targets).any()
    np.testing.assert_array_equal(task.cell_accuracy(batch.inputs, batch.targets, batch.targets), 1)


def test_sample_is_seeded_and_rejects_unknown_difficulty():
    task = get_task("sudoku")
    a = task.sample(np.random.default_rng(7), 4, "medium")
    b = task.sample(np.random.default_rng(7), 4, "medium")
    np.testing.assert_array_equal(a.inputs, b.inputs)
    with pytest.raises(ValueError, match="unknown difficulty 'insane'.*easy"):
        task.sample(np.random.default_rng(0), 1, "insane")


def test_sudoku_cell_accuracy_scores_blank_cells_only():
    task = get_task("sudoku")
    batch = task.test_set()[:3]
    # Copying the givens (and leaving blanks blank) earns nothing.
    np.testing.assert_array_equal(task.cell_accuracy(batch.inputs, batch.inputs, batch.targets), 0)
    # One wrong blank cell costs exactly 1 / (number of blanks).
    wrong = batch.targets.copy()
    cell = int(np.flatnonzero(batch.inputs[0] == 0)[0])
    wrong[0, cell] = wrong[0, cell] % 9 + 1
    acc = task.cell_accuracy(batch.inputs, wrong, batch.targets)
    assert acc[0] == pytest.approx(1 - 1 / (batch.inputs[0] == 0).sum())
    assert not task.is_correct(batch.inputs, wrong, batch.targets)[0]


def test_test_sets_are_fixed_and_valid():
    sud = get_task("sudoku").test_set()
    assert len(sud) >= 500 and get_task("sudoku").test_set() is sud
    mz = get_task("maze")
    bank = mz.test_set()
    assert len(bank) == 1000 and (bank.ratings > 110).all()
    assert mz.is_correct(bank.inputs[:20], bank.targets[:20], bank.targets[:20]).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        ("1" * 80, "81 cells, got 80 characters"),
        (np.zeros(80, dtype=np.uint8), "81 cells"),
        (np.full(81, 10), r"0 \(blank\) or 1..9"),
        (np.zeros(81, dtype=np.float32), "integers"),
        ("11" + "." * 79, "clash"),
    ],
)
def test_sudoku_parse_puzzle_names_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        get_task("sudoku").parse_puzzle(bad)


def test_maze_parse_puzzle_rejects_wrong_shape():
    with pytest.raises(ValueError, match="900 cells"):
        get_task("maze").parse_puzzle(np.ones((10, 10), dtype=np.uint8))


def test_load_solves_files_without_answers(tmp_path):
    task = get_task("sudoku")
    batch = task.test_set()[:5]
    path = tmp_path / "puzzles.txt"
    path.write_text(
        "# five hard puzzles\n" + "\n".join(sudoku.format(q) for q in batch.inputs) + "\n"
    )
    loaded = task.load(path)
    np.testing.assert_array_equal(loaded.inputs, batch.inputs)
    np.testing.assert_array_equal(loaded.targets, batch.targets)


def test_load_names_the_size_of_a_file_for_the_other_sudoku(tmp_path):
    path = tmp_path / "mini.csv"
    write_puzzle_csv(path, "sudoku-mini", get_task("sudoku-mini").test_set()[:3], "mini")
    with pytest.raises(ValueError, match=r"4x4 \(16-cell\) Sudoku puzzles, but 9x9 puzzles \(81"):
        get_task("sudoku").load(path)
    assert len(get_task("sudoku-mini").load(path)) == 3


def test_puzzle_batch_checks_shapes_and_slices():
    with pytest.raises(ValueError, match="same shape"):
        PuzzleBatch(np.zeros((2, 81), np.uint8), np.zeros((2, 80), np.uint8), np.zeros(2, np.int32))
    batch = get_task("sudoku").test_set()
    assert len(batch[3]) == 1 and len(batch[:10]) == 10
    assert len(PuzzleBatch.concat([batch[:2], batch[5:8]])) == 5


def test_generation_depends_on_seed_not_workers(tmp_path):
    one = generate_batch("sudoku", "easy", 130, seed=3, workers=1)
    two = generate_batch("sudoku", "easy", 130, seed=3, workers=2)
    np.testing.assert_array_equal(one.inputs, two.inputs)
    other = generate_batch("sudoku", "easy", 130, seed=4, workers=1)
    assert not np.array_equal(one.inputs, other.inputs)
    path = write_puzzle_csv(tmp_path / "easy.csv", "sudoku", one, "test")
    back = get_task("sudoku").load(path)
    np.testing.assert_array_equal(back.inputs, one.inputs)
    np.testing.assert_array_equal(back.targets, one.targets)
    assert (back.ratings == 0).all()


def test_maze_training_targets_are_the_solver_answer_of_the_augmented_maze():
    """Rotating a maze with tied shortest paths changes which one the solver picks, so the
    task re-solves after augmenting: the target is always the same function of the input."""
    from hrm_env.puzzles import maze

    task = get_task("maze")
    rng = np.random.default_rng(0)
    batch = task.sample(rng, 48, "easy")
    answers, _ = maze.solve_batch(batch.inputs)
    np.testing.assert_array_equal(batch.targets, answers)
    pool = maze.generate(np.random.default_rng(1), "easy", 48)
    rotated, _ = maze.augment(np.random.default_rng(2), pool.questions, pool.answers)
    inputs, targets = task.augment(np.random.default_rng(2), pool.questions, pool.answers)
    np.testing.assert_array_equal(inputs, rotated)
    np.testing.assert_array_equal(targets, maze.solve_batch(inputs)[0])
    assert maze.check_batch(inputs, targets).all()
    one_q, one_a = task.augment(np.random.default_rng(3), pool.questions[0], pool.answers[0])
    assert one_q.shape == one_a.shape == (maze.SEQ_LEN,)
    np.testing.assert_array_equal(one_a, maze.solve(one_q))


def test_maze_closest_targets_are_the_path_the_logits_favour():
    from hrm_env.puzzles import maze

    task = get_task("maze")
    rng = np.random.default_rng(4)
    batch = task.sample(rng, 8, "medium")
    # Another shortest path of each maze: the solver's in a rotated frame, rotated back.
    other = maze.invert_dihedral(maze.solve_batch(maze.dihedral(batch.inputs, 1))[0], 1)
    assert maze.check_batch(batch.inputs, other).all()
    assert (other != batch.targets).any(axis=1).any()  # some mazes have a tied path here
    # Logits whose argmax is `other`: a model that already answers with a correct path.
    logits = rng.normal(size=(8, maze.SEQ_LEN, maze.VOCAB_SIZE))
    np.put_along_axis(logits, other[..., None].astype(np.int64), 10.0, axis=-1)
    chosen = task.closest_targets(batch.inputs, batch.targets, logits)
    np.testing.assert_array_equal(chosen, other)
    # Logits that favour nothing still give a correct answer of every maze.
    flat = task.closest_targets(batch.inputs, batch.targets, np.zeros_like(logits))
    assert maze.check_batch(batch.inputs, flat).all()


def test_sudoku_closest_targets_are_its_unique_answers():
    task = get_task("sudoku")
    batch = task.sample(np.random.default_rng(5), 3, "easy")
    logits = np.random.default_rng(6).normal(size=(3, task.seq_len, task.vocab_size))
    np.testing.assert_array_equal(
        task.closest_targets(batch.inputs, batch.targets, logits), batch.targets
    )


def test_maze_aux_targets_are_the_bfs_results():
    from hrm_env.puzzles import maze

    task = get_task("maze")
    batch = task.sample(np.random.default_rng(5), 4, "medium")
    _, to_g = maze.endpoint_distances(batch.inputs)
    walls = batch.inputs == maze.WALL
    distance3 = task.aux_labels(batch.inputs, "distance3")
    assert (distance3[walls] == -1).all()
    reached = ~walls & (to_g >= 0)
    assert np.array_equal(distance3[reached], to_g[reached] % 3)
    assert (distance3[~walls & (to_g < 0)] == 3).all()
    on_path = task.aux_labels(batch.inputs, "on-path")
    for row, question in enumerate(batch.inputs):
        expected = maze.shortest_path_cells(question)
        assert np.array_equal(on_path[row][~walls[row]] == 1, expected[~walls[row]])
    slack = task.aux_labels(batch.inputs, "slack")
    assert np.array_equal(slack == 0, on_path == 1)
    assert set(task.aux_targets) == {"distance3", "on-path", "slack"}
    with pytest.raises(ValueError, match="no auxiliary target 'depth'"):
        task.aux_labels(batch.inputs, "depth")
    with pytest.raises(ValueError, match="no auxiliary target"):
        get_task("sudoku").aux_labels(np.zeros((1, 81), np.uint8), "distance3")


def small_maze():
    """A hand-made maze: S and G 4 moves apart on row 1, a loop 4 moves longer through row 3,
    a spur above the short route, a spur below the loop, and a cell no route reaches."""
    from hrm_env.puzzles import maze

    grid = np.full((maze.SIDE, maze.SIDE), maze.WALL, np.uint8)
    grid[1, 1:6] = maze.OPEN  # the shortest route, 4 moves
    grid[2:4, 1] = grid[3, 1:6] = grid[2, 5] = maze.OPEN  # a loop 4 moves longer
    grid[0, 3] = maze.OPEN  # a spur: out and back costs 2 moves
    grid[4:6, 1] = maze.OPEN  # a spur off the loop: 4 + 4 moves longer
    grid[10, 10] = maze.OPEN  # a cell no route reaches
    grid[1, 1], grid[1, 5] = maze.START, maze.GOAL
    return grid


def test_maze_rule_checker_passes_one_simple_path_and_the_cost_counts_its_marks():
    from hrm_env.puzzles import maze

    task = get_task("maze")
    grid = small_maze()
    short = grid.copy()
    short[1, 2:5] = maze.PATH
    detour = grid.copy()
    detour[2:4, 1] = detour[3, 2:5] = detour[3, 5] = detour[2, 5] = maze.PATH
    spur = short.copy()
    spur[0, 3] = maze.PATH  # a mark with one marked neighbour
    broken = short.copy()
    broken[1, 3] = maze.OPEN
    loop = short.copy()
    loop[2:4, 1] = loop[3, 2:5] = loop[3, 5] = loop[2, 5] = maze.PATH  # S and G touch two marks
    walled = short.copy()
    walled[0, 0] = maze.PATH  # a mark on a wall
    ring_open = grid.copy()  # a maze with a loop of open cells apart from the route
    ring_open[20:23, 20:23] = maze.OPEN
    ring_open[21, 21] = maze.WALL
    ring_marked = ring_open.copy()  # the short route, and that loop marked as well
    ring_marked[1, 2:5] = maze.PATH
    ring_marked[ring_open == maze.OPEN] = maze.PATH
    ring_marked[1, 1:6] = short[1, 1:6]
    ring_marked[0, 3] = ring_marked[2:4, 1] = ring_marked[3, 1:6] = ring_marked[2, 5] = maze.OPEN
    ring_marked[4:6, 1] = ring_marked[10, 10] = maze.OPEN
    answers = np.stack([short, detour, spur, broken, loop, walled, ring_marked]).reshape(7, -1)
    inputs = np.stack([grid] * 6 + [ring_open]).reshape(7, -1)
    assert task.check_rules(inputs, answers).tolist() == [True, True] + [False] * 5
    assert task.answer_cost(inputs, answers)[:2].tolist() == [3, 7]
    assert task.is_correct(inputs[:2], answers[:2], answers[:2]).tolist() == [True, False]


def test_maze_slack_target_counts_extra_moves_of_the_best_route_through_a_cell():
    from hrm_env.puzzles import maze

    grid = small_maze()
    labels = get_task("maze").aux_labels(grid.reshape(1, -1), "slack").reshape(grid.shape)
    assert (labels[1, 1:6] == 0).all()
    assert labels[0, 3] == 1 and labels[3, 3] == 2 and labels[5, 1] == 3 and labels[10, 10] == 4
    assert (labels[grid == maze.WALL] == -1).all()


@pytest.mark.parametrize(
    ("name", "file", "bad_row"),
    [
        ("sudoku", "p.csv", "x,123,,"),  # a question of 3 characters
        ("sudoku", "p.txt", "123"),
        ("maze", "m.csv", "x,#S G,,"),  # a maze of 4 characters
    ],
)
def test_every_reader_names_a_bad_line_as_path_colon_line(tmp_path, name, file, bad_row):
    """One format for a bad line in every puzzle file, ``path:LINE: message``."""
    task = get_task(name)
    good = task.sample(np.random.default_rng(0), 1)
    path = tmp_path / file
    if file.endswith(".txt"):
        # Line 1 a comment, line 2 a good puzzle, line 3 the bad one.
        path.write_text("# puzzles\n" + sudoku.format(good.inputs[0]) + "\n" + bad_row + "\n")
    else:
        # Line 1 the header, line 2 a good puzzle, line 3 the bad one.
        write_puzzle_csv(path, name, good, "t")
        path.write_text(path.read_text() + bad_row + "\n")
    with pytest.raises(ValueError) as err:
        task.load(path)
    assert str(err.value).startswith(f"{path}:3: "), str(err.value)
