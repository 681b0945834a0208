"""The ``extreme-mix`` tier: a random test split of the public collections, held out by source
puzzle from training, accepted wherever a tier or a test set is named."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.puzzles import sudoku
from hrm_env.puzzles.tasks import get_task


@pytest.fixture(scope="module")
def mix() -> sudoku.SudokuSet:
    return sudoku.load_bank("extreme-mix")


def test_the_mix_bank_holds_rated_puzzles_with_their_unique_solutions(mix):
    assert len(mix) == 1000 and mix.questions.shape == (1000, 81)
    solutions, counts, guesses = sudoku.solve_batch(mix.questions)
    assert (counts == 1).all()
    assert np.array_equal(solutions, mix.answers)
    assert np.array_equal(guesses, mix.ratings)
    assert not mix.questions.flags.writeable


def test_the_mix_is_held_out_by_source_puzzle_from_the_training_bank(mix):
    train = sudoku.load_bank("train")
    mix_sig = set(sudoku.signature(mix.questions).tolist())
    assert len(mix_sig) == len(mix)  # one puzzle per source puzzle
    assert not mix_sig & set(sudoku.signature(train.questions).tolist())
    # So the extreme tier, which augments train puzzles, never serves a mix puzzle either.
    drawn = sudoku.generate(np.random.default_rng(3), "extreme", 30)
    assert not mix_sig & set(sudoku.signature(drawn.questions).tolist())


def test_the_mix_is_a_random_draw_not_the_hard_end(mix):
    train, test = sudoku.load_bank("train"), sudoku.load_bank("test")
    # Every collection contributes, the easiest (17-clue) included, as in a random draw...
    assert {"17_clue", "forum_hardest_1905_11+"} <= set(mix.sources)
    share = {name: np.mean([s == name for s in mix.sources]) for name in set(train.sources)}
    train_share = {name: np.mean([s == name for s in train.sources]) for name in share}
    for name in share:
        assert abs(share[name] - train_share[name]) < 0.06, name
    # ... so it is far easier than the hardest bank and about as hard as the rest.
    assert np.median(mix.ratings) < np.percentile(test.ratings, 5)
    extreme = np.mean(mix.ratings >= sudoku.EXTREME_MIN_RATING)
    assert abs(extreme - np.mean(train.ratings >= sudoku.EXTREME_MIN_RATING)) < 0.06


def test_the_tier_draws_augmented_copies_of_mix_puzzles(mix):
    rng = np.random.default_rng(8)
    s = sudoku.generate(rng, "extreme-mix", 12)
    assert set(sudoku.signature(s.questions).tolist()) <= set(
        sudoku.signature(mix.questions).tolist()
    )
    assert not any((q == mix.questions).all(axis=1).any() for q in s.questions)  # augmented
    solutions, counts, guesses = sudoku.solve_batch(s.questions)
    assert (counts == 1).all() and np.array_equal(solutions, s.answers)
    assert np.array_equal(guesses, s.ratings)
    again = sudoku.generate(np.random.default_rng(8), "extreme-mix", 12)
    assert np.array_equal(again.questions, s.questions)


def test_the_task_accepts_the_tier_and_the_test_set_by_name(mix):
    task = get_task("sudoku")
    assert task.check_difficulty("extreme-mix") == "extreme-mix"
    assert task.test_tiers == ("extreme-mix",)
    assert np.array_equal(task.test_set("extreme-mix").inputs, mix.questions)
    assert np.array_equal(task.eval_data("extreme-mix").targets, mix.answers)
    assert np.array_equal(task.eval_data("extreme").inputs, task.test_set().inputs)
    assert len(task.sample(np.random.default_rng(0), 3, "extreme-mix")) == 3
    with pytest.raises(ValueError, match="unknown test set 'mix' for task 'sudoku'"):
        task.test_set("mix")
    with pytest.raises(ValueError, match="unknown difficulty 'extreme-mix'"):
        get_task("sudoku-mini").check_difficulty("extreme-mix")


def test_the_env_draws_from_the_tier(mix):
    env = ReasoningEnv("sudoku", reasoner=ScriptedReasoner("sudoku"), difficulty="extreme-mix")
    obs, info = env.reset(seed=1)
    assert int(sudoku.signature(obs["puzzle"][None])[0]) in set(
        sudoku.signature(mix.questions).tolist()
    )
    assert info["rating"] >= 0


def test_hrm_data_writes_the_tier(tmp_path, mix):
    from hrm_agent.cli import main

    out = tmp_path / "mix.csv"
    assert main(["data", "sudoku", "--difficulty", "extreme-mix", "-n", "5", "--out", str(out),
                 "--workers", "1", "--seed", "4"]) == 0  # fmt: skip
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    grids = np.stack([sudoku.parse(r["question"]) for r in rows])
    assert set(sudoku.signature(grids).tolist()) <= set(sudoku.signature(mix.questions).tolist())


def test_hrm_eval_takes_the_tier_without_a_file(capsys, tmp_path, monkeypatch):
    from hrm_agent.cli import main

    monkeypatch.chdir(tmp_path)  # no file called extreme-mix here
    assert main(["eval", "sudoku", "--data", "extreme-mix", "--limit", "2", "--max-segments",
                 "2", "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and summary["data"] == "extreme-mix"
