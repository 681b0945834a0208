"""Headless rendering: frame shapes, both modes, and what the pixels show."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.render.viewer import Palette, Snapshot, Viewer, ViewerOptions

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def grid(text: str) -> np.ndarray:
    return np.array([0 if c == "." else int(c) for c in text], dtype=np.uint8)


def cell_pixels(
    frame: np.ndarray, viewer: Viewer, n: int, index: int, pad: int | None = None
) -> np.ndarray:
    """The pixels inside cell ``index`` of an n x n board, a border of ``pad`` left out."""
    s = viewer.options.scale
    left = top = round(viewer.MARGIN * s)
    cell = round(viewer.BOARD * s) / n
    r, c = divmod(index, n)
    pad = max(3, round(cell * 0.12)) if pad is None else pad
    y0, x0 = round(top + r * cell) + pad, round(left + c * cell) + pad
    y1, x1 = round(top + (r + 1) * cell) - pad, round(left + (c + 1) * cell) - pad
    return frame[y0:y1, x0:x1]


def has_colour(pixels: np.ndarray, colour, tol: int = 12) -> bool:
    return bool((np.abs(pixels.astype(int) - np.array(colour)).max(axis=-1) <= tol).any())


def sudoku_snapshot(**overrides) -> Snapshot:
    puzzle, solution = grid(PUZZLE), grid(SOLUTION)
    prediction = puzzle.copy()  # the model has written nothing yet
    fields = dict(
        task="sudoku",
        grid_shape=(9, 9),
        puzzle=puzzle,
        prediction=prediction,
        confidence=np.full(81, 0.2, dtype=np.float32),
        previous=None,
        solution=solution,
        cycle=1,
        max_cycles=16,
        q_history=[(-5.0, 0.5)],
        traces={"confidence": [0.2]},
    )
    fields.update(overrides)
    return Snapshot(**fields)


@pytest.mark.parametrize("task", ["sudoku", "maze", "sudoku-mini"])
@pytest.mark.parametrize("mode", ["rgb_array", "human"])
def test_env_renders_frames_in_both_modes(task, mode):
    env = ReasoningEnv(task, reasoner=ScriptedReasoner(task), render_mode=mode, max_cycles=4)
    env.reset(seed=0)
    env.step(0)
    frame = env.render()
    viewer = env._viewer
    assert viewer is not None
    if mode == "rgb_array":
        assert frame.shape == (viewer.size[1], viewer.size[0], 3) and frame.dtype == np.uint8
        assert frame.std() > 10  # not a blank canvas
    else:
        assert frame is None
    env.close()
    env.close()


def test_scale_multiplies_the_frame_size():
    small = Viewer("sudoku", options=ViewerOptions(scale=1.0)).render(sudoku_snapshot())
    big = Viewer("sudoku", options=ViewerOptions(scale=2.0)).render(sudoku_snapshot())
    assert big.shape[0] == 2 * small.shape[0] and big.shape[1] == 2 * small.shape[1]


def test_a_given_digit_cell_differs_from_an_empty_cell():
    viewer = Viewer("sudoku")
    frame = viewer.render(sudoku_snapshot())
    given, empty = 0, 2  # "5" is given at cell 0; cell 2 is blank and not yet written
    g, e = cell_pixels(frame, viewer, 9, given), cell_pixels(frame, viewer, 9, empty)
    assert not np.array_equal(g, e)
    assert has_colour(g, Palette.ink, tol=40)  # the digit's ink
    assert not has_colour(e, Palette.ink, tol=40)  # nothing written in the empty cell
    assert has_colour(g, Palette.given_fill, tol=3)


def test_confidence_shades_the_answer_cells():
    viewer = Viewer("sudoku")
    sure = sudoku_snapshot(confidence=np.full(81, 1.0, dtype=np.float32))
    unsure = sudoku_snapshot(confidence=np.full(81, 0.1, dtype=np.float32))
    blank = 2
    a = cell_pixels(viewer.render(sure), viewer, 9, blank).reshape(-1, 3).mean(0)
    b = cell_pixels(viewer.render(unsure), viewer, 9, blank).reshape(-1, 3).mean(0)
    # More confident = bluer (less red), less confident = nearer white.
    assert a[0] < b[0] - 20 and b.min() > 235


def test_wrong_digits_are_marked_only_when_errors_are_shown():
    solution = grid(SOLUTION)
    prediction = solution.copy()
    wrong = 2  # a blank cell whose answer is 4
    prediction[wrong] = 9
    snap = sudoku_snapshot(prediction=prediction)
    on = Viewer("sudoku").render(snap)
    off_viewer = Viewer("sudoku", options=ViewerOptions(show_errors=False))
    off = off_viewer.render(snap)
    viewer = Viewer("sudoku")
    assert has_colour(cell_pixels(on, viewer, 9, wrong), Palette.error)
    assert not has_colour(cell_pixels(off, viewer, 9, wrong), Palette.error)
    right = 3  # answered correctly: no error colour
    assert not has_colour(cell_pixels(on, viewer, 9, right), Palette.error)


def test_cells_changed_this_cycle_are_outlined():
    solution, puzzle = grid(SOLUTION), grid(PUZZLE)
    previous = puzzle.copy()
    prediction = puzzle.copy()
    prediction[2] = solution[2]  # written this cycle
    prediction[3] = previous[3] = solution[3]  # unchanged
    snap = sudoku_snapshot(prediction=prediction, previous=previous, cycle=2)
    viewer = Viewer("sudoku")
    frame = viewer.render(snap)
    assert has_colour(cell_pixels(frame, viewer, 9, 2, pad=2), Palette.changed)
    assert not has_colour(cell_pixels(frame, viewer, 9, 3, pad=2), Palette.changed)


def test_maze_shows_walls_endpoints_and_the_predicted_path():
    env = ReasoningEnv(
        "maze", reasoner=ScriptedReasoner("maze", solve_at=1), render_mode="rgb_array"
    )
    obs, _ = env.reset(seed=0)
    frame = env.render()
    viewer = env._viewer
    puzzle, prediction = obs["puzzle"], obs["prediction"]
    from hrm_env.puzzles.maze import GOAL, PATH, START, WALL

    def first(mask):
        return int(np.flatnonzero(mask)[0])

    wall = cell_pixels(frame, viewer, 30, first(puzzle == WALL))
    start = cell_pixels(frame, viewer, 30, first(puzzle == START))
    goal = cell_pixels(frame, viewer, 30, first(puzzle == GOAL))
    path = cell_pixels(frame, viewer, 30, first(prediction == PATH))
    open_ = cell_pixels(frame, viewer, 30, first((puzzle == 2) & (prediction != PATH)))
    assert has_colour(wall, Palette.wall, tol=2)
    assert has_colour(start, Palette.good, tol=2) and has_colour(goal, Palette.goal, tol=2)
    assert has_colour(path, Palette.answer, tol=60)
    assert not has_colour(open_, Palette.answer, tol=60)


def test_panel_plots_the_q_values_over_the_episode():
    viewer = Viewer("sudoku")
    one = viewer.render(sudoku_snapshot(q_history=[(-5.0, 0.5)]))
    many = viewer.render(sudoku_snapshot(q_history=[(-5.0, 0.5), (-1.0, 0.3), (3.0, 0.1)], cycle=3))
    panel = slice(round(viewer.MARGIN * 2 + viewer.BOARD), None)
    # More points on the plot: more pixels in the halt colour in the panel.
    count = [
        int((np.abs(f[:, panel].astype(int) - Palette.halt).max(-1) <= 30).sum())
        for f in (one, many)
    ]
    assert count[1] > count[0]


def q_plot_pixels(frame: np.ndarray, viewer: Viewer) -> np.ndarray:
    """The panel below its header and status lines, above the legend: the plots."""
    s = viewer.options.scale
    return frame[round(160 * s) : -round(60 * s), round((viewer.MARGIN * 2 + viewer.BOARD) * s) :]


def colour_rows(pixels: np.ndarray, colour, tol: int = 30) -> np.ndarray:
    return np.nonzero((np.abs(pixels.astype(int) - np.array(colour)).max(-1) <= tol).any(1))[0]


def test_q_plot_puts_halting_points_above_the_decision_line_and_continuing_below():
    viewer = Viewer("sudoku", options=ViewerOptions(show_traces=False))
    # Margins q_halt - q_continue of +3 (halt wins) or -3 (continue wins), whatever the
    # logits' own levels: the panel shows the decision, not either logit.
    halting = [(-2.0 + i, -5.0 + i) for i in range(6)]
    continuing = [(h - 6.0, c) for h, c in halting]
    up = q_plot_pixels(viewer.render(sudoku_snapshot(q_history=halting, cycle=6)), viewer)
    down = q_plot_pixels(viewer.render(sudoku_snapshot(q_history=continuing, cycle=6)), viewer)
    assert len(colour_rows(up, Palette.halt)) > 0 and len(colour_rows(down, Palette.cont)) > 0
    assert len(colour_rows(up, Palette.cont)) == 0  # no continue-coloured point
    assert len(colour_rows(down, Palette.halt)) == 0
    # Halting points lie above continuing ones (a smaller row is higher up).
    assert colour_rows(up, Palette.halt).max() < colour_rows(down, Palette.cont).min()


def test_the_plotted_margin_decides_as_the_q_head_policy_does():
    from hrm_env.render.panel import halt_margins
    from hrm_env.render.watch import q_head_action

    rng = np.random.default_rng(0)
    q = rng.normal(0.0, 3.0, (200, 2)).astype(np.float32)
    q[:10, 1] = q[:10, 0]  # ties: the rule is a strict >, so a tie continues
    margins = halt_margins([tuple(row) for row in q])
    actions = [q_head_action({"q": row}) for row in q]
    assert [int(m > 0) for m in margins] == actions


def test_margin_axis_is_a_round_number_above_every_margin():
    from hrm_env.render.panel import margin_limit

    assert margin_limit([]) == 1.0
    assert margin_limit([0.3, -0.9]) == 1.0
    assert margin_limit([-3.2, 1.0]) == 5.0
    assert margin_limit([12.0, float("nan")]) == 20.0
    assert margin_limit([100.0]) == 100.0


@pytest.mark.parametrize("limit", [4, 16, 64, 128])
def test_x_axis_starts_short_and_grows_with_the_episode(limit):
    from hrm_env.render.panel import AXIS_START, axis_cycles

    axes = [axis_cycles(c, limit) for c in range(1, limit + 1)]
    assert axes[0] == min(AXIS_START, limit)  # a few cycles first, not the whole limit
    assert axes == sorted(axes) and axes[-1] == limit  # grows, up to the limit
    for cycle, axis in zip(range(1, limit + 1), axes, strict=True):
        assert cycle <= axis <= limit
        if axis > AXIS_START and axis < limit:
            assert cycle > axis / 1.5  # after a step the points still span 2/3 of the axis


def test_plots_of_a_short_episode_do_not_depend_on_a_far_limit():
    viewer = Viewer("sudoku")
    history = [(-3.0, 0.0), (-1.0, 0.0), (1.0, 0.0)]
    frames = {
        limit: q_plot_pixels(
            viewer.render(sudoku_snapshot(q_history=history, cycle=3, max_cycles=limit)), viewer
        )
        for limit in (8, 64, 4)
    }
    np.testing.assert_array_equal(frames[8], frames[64])
    assert not np.array_equal(frames[8], frames[4])  # a limit inside the axis caps it


@pytest.mark.parametrize("task", ["sudoku", "maze"])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_legend_names_every_mark_the_board_draws(task, scale):
    from hrm_env.render.panel import legend_items

    labels = {label for label, _, _ in legend_items(task)}
    if task == "maze":
        # The grey rings are the reference path's cells the model missed.
        assert {"start", "goal", "path", "changed", "wrong", "missed"} <= labels
        assert ("missed", Palette.grid_thin, "ring") in legend_items(task)
        swatches = [Palette.good, Palette.goal, Palette.answer, Palette.error]
    else:
        assert {"given", "sure", "unsure", "changed", "wrong"} <= labels
        swatches = [Palette.given_fill, Palette.error]
    env = ReasoningEnv(
        task,
        reasoner=ScriptedReasoner(task, solve_at=1),
        render_mode="rgb_array",
        viewer_options=ViewerOptions(scale=scale),
    )
    env.reset(seed=0)
    frame = env.render()
    legend = frame[-round(80 * scale) :, round((Viewer.MARGIN * 2 + Viewer.BOARD) * scale) :]
    for colour in swatches:
        assert has_colour(legend, colour, tol=4), colour


def test_render_without_a_mode_warns_and_returns_none():
    env = ReasoningEnv("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"))
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_record_video_wrapper_writes_a_video(tmp_path):
    pytest.importorskip("moviepy")
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    env = gym.make(
        "HRM-SudokuMini-v0",
        reasoner=ScriptedReasoner("sudoku-mini", solve_at=2),
        render_mode="rgb_array",
    )
    folder = tmp_path / "videos"
    env = RecordVideo(env, str(folder), episode_trigger=lambda e: True, disable_logger=True)
    env.reset(seed=0)
    env.step(0)
    env.step(1)
    env.close()
    videos = list(folder.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_extra_traces_are_plotted_and_can_be_hidden():
    from hrm_env.render.panel import TRACE_COLOURS

    env = ReasoningEnv(
        "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), render_mode="rgb_array"
    )
    env.reset(seed=0)
    env.traces["residual"] = [4.0]  # not a fraction: the trace plot rescales its axis
    env.step(0)
    env.traces["residual"].append(2.0)
    colour = TRACE_COLOURS[2]  # the third trace, after confidence and cells changed
    panel = slice(Viewer.MARGIN * 2 + Viewer.BOARD, None)
    shown = env.render()[:, panel]
    assert has_colour(shown, colour, tol=10)
    hidden_env = ReasoningEnv(
        "sudoku-mini",
        reasoner=ScriptedReasoner("sudoku-mini"),
        render_mode="rgb_array",
        viewer_options=ViewerOptions(show_traces=False),
    )
    hidden_env.reset(seed=0)
    hidden_env.traces["residual"] = [4.0]
    assert not has_colour(hidden_env.render()[:, panel], colour, tol=10)
