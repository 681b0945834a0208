"""The envs' defaults come from the model: its cycle limit, the tier it is rated on."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import hrm_env  # noqa: F401 - registers the envs
from hrm_env.envs import defaults
from hrm_env.envs.reasoner import ScriptedReasoner


def _shipped_limit(task: str) -> int:
    stem = defaults._shipped_stem(task)
    config = json.loads(stem.with_name(task + ".json").read_text())["config"]
    return config["h_cycles"] * config["max_segments"]


@pytest.mark.parametrize("env_id, task", [("HRM-Sudoku-v0", "sudoku"), ("HRM-Maze-v0", "maze")])
def test_no_arguments_run_to_the_shipped_models_own_limit_on_its_rated_tier(env_id, task):
    env = gym.make(env_id)  # builds without loading the model (or torch)
    try:
        assert env.unwrapped.max_cycles == _shipped_limit(task)
        assert env.unwrapped.max_cycles != defaults.FALLBACK_CYCLES
        assert env.observation_space["cycle"].high[0] == env.unwrapped.max_cycles
        assert env.unwrapped.difficulty == defaults.DEFAULT_TIERS[task] == "hard"
    finally:
        env.close()


def test_the_vector_env_takes_the_same_defaults():
    envs = gym.make_vec("HRM-Sudoku-v0", num_envs=2, vectorization_mode="vector_entry_point")
    try:
        assert envs.unwrapped.max_cycles == _shipped_limit("sudoku")
        assert envs.unwrapped.difficulty == "hard"
    finally:
        envs.close()


def test_explicit_arguments_and_other_models_win(tmp_path):
    env = gym.make("HRM-Sudoku-v0", max_cycles=5, difficulty="extreme")
    assert (env.unwrapped.max_cycles, env.unwrapped.difficulty) == (5, "extreme")
    # A reasoner without a model config gets the fallback; a checkpoint its own JSON's limit.
    scripted = gym.make("HRM-Sudoku-v0", reasoner=ScriptedReasoner("sudoku", solve_at=2))
    assert scripted.unwrapped.max_cycles == defaults.FALLBACK_CYCLES
    stem = tmp_path / "mine"
    stem.with_name("mine.json").write_text(
        json.dumps({"config": {"h_cycles": 2, "max_segments": 5}})
    )
    assert defaults.cycle_limit("sudoku", checkpoint=stem) == 10
    assert defaults.cycle_limit("sudoku", checkpoint=str(stem) + ".safetensors") == 10
    # A checkpoint that cannot be read falls back here; loading it reports the problem.
    assert defaults.cycle_limit("sudoku", checkpoint=tmp_path / "missing") == 16


def test_a_bad_max_cycles_still_names_the_argument():
    with pytest.raises(ValueError, match="max_cycles must be an integer >= 1"):
        gym.make("HRM-Sudoku-v0", max_cycles=0)
    with pytest.raises(ValueError, match="max_cycles"):
        gym.make("HRM-Sudoku-v0", max_cycles=True)
