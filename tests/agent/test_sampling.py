"""Several trajectories per puzzle: one batch, seeded noise, trajectory 0 the plain model, the
selection rules and the rule checker, through evaluate, solve, hrm eval, the env and watch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrm_agent.evaluate import evaluate
from hrm_agent.reasoner import TorchReasoner, load_model
from hrm_agent.sampling import (
    RULES,
    Diversity,
    Trajectories,
    doubtful_guesses,
    guess_plan,
    run_trajectories,
    select,
)
from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.puzzles.tasks import get_task
from tests.agent.test_evaluate import mini_checkpoint, mini_puzzles  # noqa: F401 (fixture)

SOURCES = [
    Diversity(carry_sigma=0.5),
    Diversity(init_sigma=1.0),
    Diversity(input_dropout=0.3),
]


@pytest.fixture
def model(mini_checkpoint):  # noqa: F811
    return load_model("sudoku-mini", mini_checkpoint)[0]


def tokens_of(n: int) -> torch.Tensor:
    return torch.from_numpy(mini_puzzles(n).inputs.astype(np.int64))


def plain_run(model, tokens):
    """The model's own Q-halting answers and q_halt, written out without the sampling code."""
    n_cycles = model.config.max_cycles
    B = tokens.shape[0]
    answers = np.zeros(tuple(tokens.shape), np.uint8)
    q_at = np.zeros(B, np.float32)
    done = np.zeros(B, bool)
    with torch.inference_mode():
        x = model.embed(tokens)
        carry = model.initial_carry(B)
        for c in range(1, n_cycles + 1):
            carry = model.cycle(carry, x)
            out = model.readout(carry)
            stop = ~done & ((out.q_halt > out.q_continue).numpy() | (c == n_cycles))
            answers[stop] = out.logits.argmax(-1).numpy()[stop]
            q_at[stop] = out.q_halt.numpy()[stop]
            done |= stop
    return answers, q_at


@pytest.mark.parametrize("diversity", [*SOURCES, Diversity(guess_cycle=2)])
def test_one_sample_is_the_plain_model_bit_for_bit(model, diversity):
    tokens = tokens_of(12)
    answers, q_halt = plain_run(model, tokens)
    t = run_trajectories(model, tokens, samples=1, diversity=diversity, seed=3, blank=0)
    np.testing.assert_array_equal(t.answers[:, 0], answers)
    np.testing.assert_array_equal(t.q_halt[:, 0], q_halt)  # exact, not close


@pytest.mark.parametrize("diversity", SOURCES)
def test_same_seed_same_trajectories_and_each_source_makes_them_differ(model, diversity):
    tokens = tokens_of(8)
    a = run_trajectories(model, tokens, samples=4, diversity=diversity, seed=7)
    b = run_trajectories(model, tokens, samples=4, diversity=diversity, seed=7)
    c = run_trajectories(model, tokens, samples=4, diversity=diversity, seed=8)
    np.testing.assert_array_equal(a.answers, b.answers)
    np.testing.assert_array_equal(a.q_halt, b.q_halt)
    assert not np.array_equal(a.q_halt, c.q_halt)
    _, q_plain = plain_run(model, tokens)
    np.testing.assert_allclose(a.q_halt[:, 0], q_plain, atol=1e-5)  # 0 is the plain model
    # Run to the limit (carry noise starts at cycle 2, after half of these halt), the noisy
    # trajectories all differ from the clean one.
    full = run_trajectories(model, tokens, samples=4, diversity=diversity, seed=7, use_q=False)
    assert (full.q_halt[:, 1:] != full.q_halt[:, :1]).all()


def test_k_trajectories_run_as_one_batch(model):
    sizes = []
    cycle = model.cycle

    def counting(carry, x, tokens=None):
        sizes.append(x.shape[0])
        return cycle(carry, x, tokens)

    model.cycle = counting
    run_trajectories(model, tokens_of(3), samples=5, diversity=SOURCES[0], use_q=False)
    assert sizes == [15] * model.config.max_cycles  # 3 puzzles x 5 rows, once per cycle


def test_guesses_take_the_two_likeliest_digits_of_the_most_doubtful_blank_cells():
    # Two puzzles of 4 cells, K = 5: trajectory 0 clean, then two pairs of guesses.
    tokens = torch.tensor([[0, 0, 3, 0], [1, 0, 2, 4]]).repeat_interleave(5, dim=0)
    probs = torch.full((10, 4, 5), 1e-4)  # tokens 0..4, token 0 the blank
    lead = {
        0: [(1, 0.5, 2, 0.4), (2, 0.9, 4, 0.1), (3, 0.5, 1, 0.5), (1, 0.7, 4, 0.3)],
        1: [(1, 1.0, 2, 0.0), (3, 0.6, 4, 0.4), (2, 0.6, 1, 0.4), (4, 1.0, 3, 0.0)],
    }
    for b, cells in lead.items():
        for c, (d1, p1, d2, p2) in enumerate(cells):
            probs[b * 5, c, d1], probs[b * 5, c, d2] = p1, p2
    probs[1:5] = 0.25  # the other rows' beliefs are not read
    out = doubtful_guesses(tokens, probs.log(), samples=5, blank=0)
    a, b = out.view(2, 5, 4)
    # Puzzle 0: blanks 0, 1, 3; doubt (2nd choice) 0.4, 0.1, 0.3, so cell 0 then cell 3.
    assert a.tolist() == [[0, 0, 3, 0], [1, 0, 3, 0], [2, 0, 3, 0], [0, 0, 3, 1], [0, 0, 3, 4]]
    # Puzzle 1: one blank (cell 1): its pair, then nothing left to guess; givens untouched
    # although cell 2's given is the most "doubted" cell of the readout.
    assert b.tolist() == [[1, 0, 2, 4], [1, 3, 2, 4], [1, 4, 2, 4], [1, 0, 2, 4], [1, 0, 2, 4]]


def test_guessing_trajectories_read_one_more_given_after_the_guess_cycle(model):
    tokens = tokens_of(3)
    seen = []
    cycle = model.cycle

    def recording(carry, x, rows=None):
        seen.append((x.clone(), None if rows is None else rows.clone()))
        return cycle(carry, x, rows)

    model.cycle = recording
    guess = Diversity(guess_cycle=2)
    t = run_trajectories(model, tokens, 3, guess, use_q=False, blank=0)
    model.cycle = cycle
    x_plain = model.embed(tokens.repeat_interleave(3, dim=0))
    for i, (x, _) in enumerate(seen):
        changed = (x != x_plain).any(-1)[:, 1:]  # (R, S) cells whose injection differs
        if i < 2:
            assert not changed.any()  # the guess comes after 2 cycles
        else:
            per_row = changed.sum(-1).view(3, 3)
            assert per_row[:, 0].eq(0).all() and per_row[:, 1:].eq(1).all()
            assert (tokens.numpy()[changed.view(3, 3, -1)[:, 1:].any(1).numpy()] == 0).all()
    # Trajectory 0 is the plain model; the run is deterministic.
    plain_full = run_trajectories(model, tokens, 1, use_q=False)
    np.testing.assert_array_equal(t.answers[:, 0], plain_full.answers[:, 0])
    again = run_trajectories(model, tokens, 3, guess, use_q=False, blank=0)
    np.testing.assert_array_equal(again.answers, t.answers)
    # A task without blank cells cannot guess: a clear error, before any work.
    with pytest.raises(ValueError, match="guesses .guess_cycle. need a task with blank cells"):
        run_trajectories(model, tokens, 3, guess)
    from hrm_agent.api import solve

    with pytest.raises(ValueError, match="need a task with blank cells, not 'maze'"):
        solve(np.zeros((1, 900), np.uint8), task="maze", samples=2, diversity=guess)


def test_a_tree_of_guesses_gives_every_guessing_trajectory_its_own_path():
    # K = 16, depth 4: 15 leaves, each a different sequence of choices; trajectory 0 never guesses.
    plan = guess_plan(16, 4)
    assert (plan[:, 0] == -1).all()
    paths = {tuple(plan[:, k, 1:].ravel()) for k in range(1, 16)}
    assert len(paths) == 15
    # Levels before the last take the group's most doubtful cell, first half digit 0.
    assert (plan[:3, 1:, 1] == 0).all()
    assert plan[0, 1:, 2].tolist() == [0] * 8 + [1] * 7
    assert plan[0, 1:, 0].tolist() == [0] * 15  # level 0 reads the clean trajectory
    # Then each group reads its first trajectory.
    assert plan[1, 1:, 0].tolist() == [1] * 8 + [9] * 7
    assert plan[2, 1:, 0].tolist() == [1] * 4 + [5] * 4 + [9] * 4 + [13] * 3
    # Depth 1 is the single guess: trajectory 0's j-th most doubtful cell, in pairs.
    single = guess_plan(5, 1)[0, 1:]
    assert single.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]


def test_each_level_of_the_tree_reads_the_doubt_of_its_group():
    # One puzzle of 4 blank cells, K = 5, depth 2: rows 1, 2 then 3, 4 are the two groups.
    tokens = torch.zeros((5, 4), dtype=torch.int64)
    probs = torch.full((5, 4, 5), 1e-4)
    probs[0, :, 1], probs[0, :, 2] = 0.6, 0.1  # row 0: cell 2 the most doubtful (1 or 3)
    probs[0, 2, 2], probs[0, 2, 3] = 1e-4, 0.4
    first = doubtful_guesses(tokens, probs.log(), samples=5, blank=0, level=0, depth=2)
    assert first[:, 2].tolist() == [0, 1, 1, 3, 3] and (first[:, [0, 1, 3]] == 0).all()
    # Level 1: row 1 reads cell 0 as its doubt, row 3 cell 3; each group splits its cell.
    probs = torch.full((5, 4, 5), 1e-4)
    probs[1, :, 4] = 0.9
    probs[1, 0, 4], probs[1, 0, 1], probs[1, 0, 2] = 0.5, 0.3, 0.2  # row 1: cell 0, digits 4, 1
    probs[3, :, 2] = 0.9
    probs[3, 3, 2], probs[3, 3, 4] = 0.55, 0.45  # row 3: cell 3, digits 2, 4
    probs[3, 2, 2], probs[3, 2, 4] = 0.5, 0.5  # cell 2 is row 3's own given now: never guessed
    probs[2], probs[4] = 0.2, 0.2  # the second row of a group is not read
    second = doubtful_guesses(first, probs.log(), samples=5, blank=0, level=1, depth=2)
    assert second.tolist() == [
        [0, 0, 0, 0],
        [4, 0, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 3, 2],
        [0, 0, 3, 4],
    ]


def test_the_tree_guesses_at_its_levels_and_only_there(model):
    tree = Diversity(guess_cycle=2, guess_depth=3, guess_every=2)
    assert [tree.guess_level(c) for c in range(1, 9)] == [None, 0, None, 1, None, 2, None, None]
    assert Diversity(guess_cycle=2).guess_level(2) == 0 and Diversity().guess_level(2) is None
    assert tree.label() == "guess at cycle 2 (tree of depth 3, every 2)"
    with pytest.raises(ValueError, match="guess_depth 2 needs guess_cycle > 0"):
        Diversity(guess_depth=2)
    with pytest.raises(ValueError, match="guess_every must be an integer >= 1"):
        Diversity(guess_cycle=2, guess_every=0)
    tokens = tokens_of(3)
    seen = []
    cycle = model.cycle

    def recording(carry, x, rows=None):
        seen.append(None if rows is None else rows.clone())
        return cycle(carry, x, rows)

    model.cycle = recording
    t = run_trajectories(model, tokens, 8, tree, use_q=False, blank=0)
    model.cycle = cycle
    rows = tokens.repeat_interleave(8, dim=0)
    written = [(r != rows).sum(-1).view(3, 8) for r in seen]
    for c, w in enumerate(written, start=1):
        level_done = sum(1 for g in (2, 4, 6) if g < c)  # guesses read from the next cycle on
        assert w[:, 0].eq(0).all()
        assert w[:, 1:].eq(level_done).all(), (c, w)
    plain = run_trajectories(model, tokens, 1, use_q=False)
    np.testing.assert_array_equal(t.answers[:, 0], plain.answers[:, 0])


def synthetic() -> Trajectories:
    # Puzzle 0: trajectories give answers A, B, B; q_halt highest on 0; trajectory 2 halts first.
    A, B = [1, 2], [2, 1]
    answers = np.array([[A, B, B]], dtype=np.uint8)
    return Trajectories(answers, np.array([[3.0, 1.0, 2.0]]), np.array([[8, 8, 4]]))


def test_the_rules_pick_as_documented():
    t = synthetic()
    assert select(t, "q").tolist() == [0]
    assert select(t, "first").tolist() == [2]
    assert select(t, "vote").tolist() == [2]  # B twice; of the two, 2 has the higher q_halt
    assert select(t, "checker", valid=np.array([[False, True, True]])).tolist() == [2]
    cheap = select(t, "checker", valid=np.array([[False, True, True]]), cost=np.array([[0, 1, 5]]))
    assert cheap.tolist() == [1]  # the cheapest that passes, before the highest q_halt
    assert select(t, "checker", valid=np.array([[False, False, False]])).tolist() == [0]
    with pytest.raises(ValueError, match="unknown selection rule 'best'"):
        select(t, "best")


def test_the_rule_checker_checks_rules_and_givens_without_a_solution():
    task = get_task("sudoku-mini")
    batch = mini_puzzles(4)
    good = batch.targets.copy()
    assert task.check_rules(batch.inputs, good).all()
    swapped = good.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # two digits of a row exchanged: columns break
    assert not task.check_rules(batch.inputs, swapped).any()
    blank = good.copy()
    blank[:, 5] = 0
    assert not task.check_rules(batch.inputs, blank).any()
    # A valid grid that overwrites a given fails: relabel digits 1 <-> 2 everywhere.
    relabelled = np.choose(good.astype(np.int64), [0, 2, 1, 3, 4]).astype(np.uint8)
    keeps = np.all((batch.inputs == 0) | (batch.inputs == relabelled), axis=1)
    assert (task.check_rules(batch.inputs, relabelled) == keeps).all() and not keeps.all()


def test_evaluate_reports_every_rule_and_pass_at_k_bounds_them(model):
    batch = mini_puzzles(16)
    one = evaluate(model, "sudoku-mini", batch)
    many = evaluate(model, "sudoku-mini", batch, samples=4, diversity=SOURCES[0], seed=1)
    # The per-cycle figures are trajectory 0's, the plain model's.
    np.testing.assert_array_equal(many.q_predictions, one.q_predictions)
    assert set(many.rules) == set(RULES)
    checker = many.rules["checker"]["exact_accuracy"]
    assert all(many.rules[r]["exact_accuracy"] <= checker for r in RULES)
    assert checker >= one.q_exact_accuracy
    assert one.rules["q"]["exact_accuracy"] == one.q_exact_accuracy
    summary = many.to_json("q")
    assert summary["samples"]["k"] == 4 and summary["samples"]["diversity"] == "carry 0.5"


def test_solve_with_samples_is_seeded_and_one_sample_is_todays(model, mini_checkpoint):  # noqa: F811
    from hrm_agent.api import solve

    batch = mini_puzzles(10)
    kw = dict(task="sudoku-mini", checkpoint=mini_checkpoint)
    today = evaluate(model, "sudoku-mini", batch).q_predictions
    np.testing.assert_array_equal(solve(batch.inputs, samples=1, seed=9, **kw), today)
    for rule in ("q", "first", "vote"):
        a = solve(batch.inputs, samples=4, seed=2, rule=rule, **kw)
        np.testing.assert_array_equal(a, solve(batch.inputs, samples=4, seed=2, rule=rule, **kw))
    with pytest.raises(ValueError, match="rule must be one of"):
        solve(batch.inputs, samples=2, rule="checker", **kw)
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        solve(batch.inputs, samples=0, **kw)


def test_hrm_eval_reports_each_rule_in_json(mini_checkpoint, capsys):  # noqa: F811
    from hrm_agent.cli import main

    argv = ["eval", "sudoku-mini", "--checkpoint", str(mini_checkpoint), "--limit", "6",
            "--samples", "3", "--seed", "4", "--init-noise", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    rules = summary["samples"]["rules"]
    assert set(rules) == set(RULES) and summary["samples"]["diversity"] == "init 1"
    assert all(0.0 <= v["exact_accuracy"] <= 1.0 for v in rules.values())
    assert main(argv[:-1]) == 0  # the table names the checker as a bound
    assert "rule checker (pass@K, bound)" in capsys.readouterr().out
    assert main([*argv[:-1], "--input-dropout", "1.5"]) == 2
    assert "input_dropout must lie in [0, 1)" in capsys.readouterr().err
    assert main([*argv[:-3], "--guess-cycle", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["diversity"] == "guess at cycle 2"
    assert main([*argv[:-3], "--guess-cycle", "-1"]) == 2
    assert "guess_cycle must be an integer >= 0" in capsys.readouterr().err
    tree = ["--guess-cycle", "2", "--guess-depth", "2", "--guess-every", "3", "--json"]
    assert main([*argv[:-3], *tree]) == 0
    label = json.loads(capsys.readouterr().out)["samples"]["diversity"]
    assert label == "guess at cycle 2 (tree of depth 2, every 3)"
    assert main([*argv[:-3], "--guess-depth", "2"]) == 2
    assert "guess_depth 2 needs guess_cycle > 0" in capsys.readouterr().err


def test_shards_of_an_evaluation_give_the_answers_of_one_run(model, mini_checkpoint, capsys):  # noqa: F811
    batch = mini_puzzles(6)
    kw = dict(samples=3, diversity=SOURCES[0], seed=5, batch_size=2)
    whole = evaluate(model, "sudoku-mini", batch, **kw).trajectories
    shard = evaluate(model, "sudoku-mini", batch[2:6], first_index=2, **kw).trajectories
    np.testing.assert_array_equal(shard.answers, whole.answers[2:6])
    np.testing.assert_array_equal(shard.q_halt, whole.q_halt[2:6])
    # Seeded by position, not by order: the shard read as a set of its own differs.
    alone = evaluate(model, "sudoku-mini", batch[2:6], **kw).trajectories
    assert not np.array_equal(alone.q_halt, shard.q_halt)
    from hrm_agent.cli import main

    argv = ["eval", "sudoku-mini", "--checkpoint", str(mini_checkpoint), "--json"]
    assert main([*argv, "--start", "2", "--limit", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 3 and summary["start"] == 2
    assert main([*argv, "--start", "-1"]) == 2
    assert "--start must be >= 0" in capsys.readouterr().err
    assert main([*argv, "--start", "100000"]) == 2
    assert "no puzzles to evaluate" in capsys.readouterr().err


def test_the_env_reports_the_chosen_trajectory_seeded(model):
    def episode(seed):
        env = ReasoningEnv("sudoku-mini", reasoner=TorchReasoner(model, "sudoku-mini"),
                           samples=4, diversity={"carry_sigma": 0.5}, max_cycles=4)  # fmt: skip
        obs, info = env.reset(seed=seed)
        seen = [(info["trajectory"], obs["q"].tolist())]
        for _ in range(3):
            obs, _, terminated, _, info = env.step(0)
            seen.append((info["trajectory"], obs["q"].tolist()))
        return seen, env.traces["trajectory"]

    a, trace = episode(5)
    assert a == episode(5)[0]
    assert all(0 <= t < 4 for t, _ in a) and trace == [float(t) for t, _ in a]
    assert a != episode(6)[0]
    one = ReasoningEnv("sudoku-mini", reasoner=TorchReasoner(model, "sudoku-mini"))
    assert "trajectory" not in one.reset(seed=5)[1]
    with pytest.raises(ValueError, match="samples=2 needs a reasoner that runs diverse"):
        ReasoningEnv("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), samples=2)
    with pytest.raises(ValueError, match="unknown diversity field"):
        ReasoningEnv("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), diversity={"x": 1})


def test_watch_shows_the_chosen_trajectory(model, tmp_path):
    from hrm_env.render.watch import watch

    out = tmp_path / "w.gif"
    reasoner = TorchReasoner(model, "sudoku-mini")
    assert watch("sudoku-mini", seed=0, save=out, reasoner=reasoner, max_cycles=2, samples=3,
                 diversity={"init_sigma": 1.0}) == 0  # fmt: skip
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def maze_model():
    from hrm_agent.config import HRMConfig
    from hrm_agent.model import HRM

    config = HRMConfig.preset(
        "tiny", mixer="conv", seq_len=900, vocab_size=6, hidden_size=16, num_heads=1,
        h_layers=1, l_layers=1, l_cycles=1, h_cycles=1, max_segments=2,
    )  # fmt: skip
    model = HRM(config, generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():  # a Q head whose sure trajectory changes from maze to maze
        model.q_head.weight.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(1))
    return model


def test_each_view_is_the_plain_model_on_the_turned_maze_mapped_back(maze_model):
    from hrm_env.puzzles import maze

    batch = get_task("maze").sample(np.random.default_rng(3), 2, "easy")
    tokens = torch.from_numpy(batch.inputs.astype(np.int64))
    views = get_task("maze").views
    t = run_trajectories(
        maze_model, tokens, samples=9, diversity=Diversity(views=True), use_q=False, views=views
    )
    for k in range(9):  # trajectory 8 sees view 0 again
        turned = torch.from_numpy(maze.dihedral(batch.inputs, k % 8).astype(np.int64))
        alone = run_trajectories(maze_model, turned, use_q=False)
        np.testing.assert_array_equal(
            t.answers[:, k], maze.invert_dihedral(alone.answers[:, 0], k % 8)
        )
    assert not np.array_equal(t.answers[:, 1], t.answers[:, 0])  # the model is not symmetric


def test_views_alone_add_no_noise_and_need_a_task_that_offers_them(maze_model, model):
    from hrm_agent.sampling import RowViews, make_views

    index = get_task("maze").views
    rows = RowViews(index, batch=2, samples=3, device=torch.device("cpu"))
    grids = torch.arange(6 * 900).view(6, 900)
    np.testing.assert_array_equal(rows.back(rows.show(grids)), grids)
    np.testing.assert_array_equal(rows.show(grids)[[0, 3]], grids[[0, 3]])  # trajectory 0
    assert Diversity(views=True).active and not Diversity(views=True).noisy
    assert Diversity(views=True).label() == "views"
    assert make_views(Diversity(views=True), index, 4, 1, torch.device("cpu")) is None  # K = 1
    with pytest.raises(ValueError, match="offers none"):
        run_trajectories(model, tokens_of(2), samples=2, diversity=Diversity(views=True))
    with pytest.raises(ValueError, match="views and guesses"):
        Diversity(views=True, guess_cycle=2)
    with pytest.raises(ValueError, match="views must be True or False"):
        Diversity(views="yes")
    with pytest.raises(ValueError, match="permutations of the cells"):
        RowViews(np.zeros((2, 4), np.int64), 1, 2, torch.device("cpu"))
    reasoner = TorchReasoner(maze_model, "maze")
    with pytest.raises(ValueError, match="views are for hrm eval and solve"):
        reasoner.reset(np.zeros((1, 900), np.uint8), diversity=Diversity(views=True))


def test_hrm_eval_views_on_a_maze_checkpoint(maze_model, tmp_path, capsys):
    from hrm_agent.checkpoint import save_checkpoint
    from hrm_agent.cli import main
    from hrm_env.puzzles import maze

    stem = tmp_path / "m"
    save_checkpoint(stem, maze_model, meta={"task": "maze"})
    data = tmp_path / "m.csv"
    batch = get_task("maze").sample(np.random.default_rng(4), 3, "easy")
    maze.write_csv(data, maze.MazeSet(batch.inputs, batch.targets, batch.ratings, ["t"] * 3))
    argv = ["eval", "maze", "--checkpoint", str(stem), "--data", str(data), "--samples", "8",
            "--views", "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"]["diversity"] == "views" and summary["samples"]["k"] == 8
    assert main([*argv, "--carry-noise", "0.2"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["diversity"] == "views + carry 0.2"


def test_the_env_with_views_answers_in_the_puzzles_own_frame(maze_model):
    from hrm_env.puzzles import maze

    env = ReasoningEnv("maze", reasoner=TorchReasoner(maze_model, "maze"), samples=8,
                       diversity={"views": True}, max_cycles=2)  # fmt: skip
    obs, info = env.reset(seed=2)
    chosen = []
    for cycles in (1, 2):
        k = info["trajectory"]
        chosen.append(k)
        turned = torch.from_numpy(maze.dihedral(obs["puzzle"][None], k).astype(np.int64))
        alone = run_trajectories(maze_model, turned, max_segments=cycles, use_q=False)
        np.testing.assert_array_equal(
            obs["prediction"], maze.invert_dihedral(alone.answers[0, 0], k)
        )
        if cycles == 1:
            obs, _, _, _, info = env.step(0)
    assert min(chosen) > 0  # views other than the identity were read back
    with pytest.raises(ValueError, match="'sudoku-mini' offers none"):
        ReasoningEnv(
            "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), diversity={"views": True}
        )
    with pytest.raises(ValueError, match=r"diversity\['views'\] must be True or False"):
        ReasoningEnv("maze", reasoner=ScriptedReasoner("maze"), diversity={"views": 1})
