"""The single halting env: registration, API contract, rewards, seeding and errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import hrm_env
from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv, read_answer

ENV_IDS = {"sudoku": "HRM-Sudoku-v0", "maze": "HRM-Maze-v0", "sudoku-mini": "HRM-SudokuMini-v0"}

# A valid 9x9 puzzle with a unique solution (a well-known one with 30 givens).
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def scripted_env(task: str = "sudoku", **kwargs) -> ReasoningEnv:
    solve_at = kwargs.pop("solve_at", 3)
    return ReasoningEnv(task, reasoner=ScriptedReasoner(task, solve_at=solve_at), **kwargs)


# -- import and registration ------------------------------------------------------------------


def test_import_registers_and_loads_nothing_heavy():
    code = (
        "import sys, gymnasium as gym, hrm_env\n"
        "heavy = [m for m in ('torch', 'pygame', 'numba', 'stable_baselines3', 'hrm_env.envs',"
        " 'hrm_env.puzzles.sudoku', 'hrm_env.puzzles.maze') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "for i in ('HRM-Sudoku-v0', 'HRM-Maze-v0', 'HRM-SudokuMini-v0'):\n"
        "    spec = gym.spec(i)\n"
        "    assert spec.vector_entry_point is not None, i\n"
        "env = gym.make('hrm_env:HRM-SudokuMini-v0', max_cycles=2)  # model loads on reset\n"
        "assert type(env.unwrapped).__name__ == 'ReasoningEnv'\n"
        "assert 'torch' not in sys.modules and 'pygame' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_module_prefixed_id_makes_the_env():
    env = gym.make("hrm_env:HRM-SudokuMini-v0", reasoner=ScriptedReasoner("sudoku-mini"))
    assert isinstance(env.unwrapped, ReasoningEnv)
    assert env.unwrapped.task.name == "sudoku-mini"
    env.close()


def test_registered_ids_map_to_tasks():
    for env_id, task in hrm_env.ENV_IDS.items():
        assert gym.spec(env_id).kwargs["task"] == task


# -- the API contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["sudoku", "maze"])
def test_gymnasium_check_env_passes_without_warning(task):
    env = gym.make(ENV_IDS[task], reasoner=ScriptedReasoner(task), max_cycles=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("task", ["sudoku", "maze"])
def test_sb3_check_env_passes_without_warning(task):
    from stable_baselines3.common.env_checker import check_env

    env = ReasoningEnv(task, reasoner=ScriptedReasoner(task), max_cycles=4, latent=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)


def test_check_env_with_a_real_model(tiny_reasoner):
    env = gym.make("HRM-SudokuMini-v0", reasoner=tiny_reasoner("sudoku-mini"), max_cycles=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=True)


def test_observation_and_info_types():
    env = scripted_env("sudoku-mini", latent=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"puzzle", "prediction", "confidence", "q", "cycle", "z_H"}
    assert obs["cycle"].tolist() == [1.0]
    assert obs["z_H"].shape == (env.reasoner.latent_size,)
    assert type(info["solved"]) is bool and type(info["cycles"]) is int
    assert type(info["cell_accuracy"]) is float and type(info["q_halt_prob"]) is float
    assert type(info["rating"]) is int
    obs, reward, terminated, truncated, info = env.step(0)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert obs["cycle"].tolist() == [2.0]


def test_confidence_is_the_max_softmax_probability():
    logits = np.array([[[0.0, 1.0, 3.0], [5.0, 5.0, -1.0]]], dtype=np.float32)
    prediction, confidence = read_answer(logits)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert prediction.tolist() == [[2, 0]]
    np.testing.assert_allclose(confidence, probs.max(-1), rtol=1e-6)
    # Huge logits must not overflow to nan.
    _, conf = read_answer(np.array([[[1e4, 0.0]]], dtype=np.float32))
    assert np.isfinite(conf).all() and conf[0, 0] == pytest.approx(1.0)


# -- rewards and episode ends -----------------------------------------------------------------


def test_halting_once_solved_pays_one_minus_the_thinking_cost():
    env = scripted_env("sudoku-mini", solve_at=3, step_cost=0.05)
    obs, info = env.reset(seed=0)
    assert not info["solved"]
    rewards = []
    for _ in range(2):
        obs, r, terminated, truncated, info = env.step(0)
        rewards.append(r)
        assert not terminated and not truncated
    assert info["solved"] and info["cycles"] == 3
    obs, r, terminated, truncated, info = env.step(1)
    assert terminated and not truncated
    assert rewards == [-0.05, -0.05] and r == 1.0
    np.testing.assert_array_equal(obs["prediction"], env.solution)


def test_halting_early_scores_exact_zero_or_the_cell_fraction():
    exact = scripted_env("sudoku", solve_at=4, reward="exact")
    _, info = exact.reset(seed=1)
    _, r, terminated, _, _ = exact.step(1)
    assert terminated and r == 0.0
    cells = scripted_env("sudoku", solve_at=4, reward="cells")
    _, info = cells.reset(seed=1)
    _, r, terminated, _, info = cells.step(1)
    assert r == pytest.approx(info["cell_accuracy"])
    assert 0.0 < r < 1.0


def test_the_env_halts_by_itself_after_max_cycles():
    env = scripted_env("sudoku-mini", solve_at=None, max_cycles=5, step_cost=0.1)
    env.reset(seed=0)
    steps = 0
    while True:
        obs, r, terminated, truncated, info = env.step(0)
        steps += 1
        if terminated or truncated:
            break
    # Cycles 2..5 cost 0.1 each; the next step commits the (never correct) answer for free.
    assert steps == 5 and info["cycles"] == 5 and obs["cycle"][0] == 5
    assert terminated and not truncated and r == 0.0 and not info["solved"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.integers(0, 1), min_size=1, max_size=12),
    seed=st.integers(0, 2**31 - 1),
    solve_at=st.integers(1, 6),
)
def test_return_is_score_minus_thinking_cost(actions, seed, solve_at):
    env = scripted_env("sudoku-mini", solve_at=solve_at, max_cycles=6, step_cost=0.01)
    obs, _ = env.reset(seed=seed)
    total, continues = 0.0, 0
    for a in actions + [1]:
        cycles_before = int(obs["cycle"][0])
        obs, r, terminated, _, info = env.step(a)
        assert env.observation_space.contains(obs)
        total += r
        if terminated:
            break
        continues += 1
        assert int(obs["cycle"][0]) == cycles_before + 1
    assert terminated
    assert info["cycles"] == 1 + continues <= 6
    assert total == pytest.approx(-0.01 * continues + float(info["cycles"] >= solve_at))


# -- seeding -------------------------------------------------------------------------------------


def rollout(env: ReasoningEnv, seed: int, n_steps: int, action_seed: int = 0) -> list:
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    trace = [(obs, info)]
    for _ in range(n_steps):
        obs, r, terminated, truncated, info = env.step(int(rng.random() < 0.3))
        trace.append((obs, r, terminated, info))
        if terminated:
            obs, info = env.reset()
            trace.append((obs, info))
    return trace


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("task", ["sudoku", "maze"])
def test_same_seed_gives_identical_trajectories(task):
    a = rollout(scripted_env(task, max_cycles=4), seed=7, n_steps=12)
    b = rollout(scripted_env(task, max_cycles=4), seed=7, n_steps=12)
    assert_same(a, b)
    c = rollout(scripted_env(task, max_cycles=4), seed=8, n_steps=12)
    assert not np.array_equal(a[0][0]["puzzle"], c[0][0]["puzzle"])


def test_same_seed_identical_with_a_real_model(tiny_reasoner):
    def make():
        return ReasoningEnv("sudoku", reasoner=tiny_reasoner("sudoku"), max_cycles=4)

    assert_same(rollout(make(), seed=3, n_steps=10), rollout(make(), seed=3, n_steps=10))


# -- puzzles from options and datasets -------------------------------------------------------


def test_reset_with_a_given_puzzle_solves_it():
    env = scripted_env("sudoku", solve_at=1)
    for puzzle in (PUZZLE, np.array([0 if ch == "." else int(ch) for ch in PUZZLE]).reshape(9, 9)):
        obs, info = env.reset(options={"puzzle": puzzle})
        assert "".join(str(v) if v else "." for v in obs["puzzle"]) == PUZZLE
        assert "".join(map(str, env.solution)) == SOLUTION
        assert info["solved"] and info["rating"] == -1
        _, r, terminated, _, _ = env.step(1)
        assert terminated and r == 1.0


def test_reset_with_a_given_maze_solves_it():
    from hrm_env.puzzles import maze

    question = maze.generate(np.random.default_rng(0), "easy", 1).questions[0]
    env = scripted_env("maze", solve_at=1)
    obs, info = env.reset(options={"puzzle": maze.format(question)})
    np.testing.assert_array_equal(obs["puzzle"], question)
    assert info["solved"] and maze.is_valid_shortest_path(question, env.solution)
    with pytest.raises(ValueError):
        env.reset(options={"puzzle": maze.format(question).replace("G", " ")})


MALFORMED = {
    "too short": PUZZLE[:80],
    "bad character": PUZZLE[:3] + "x" + PUZZLE[4:],
    "clashing givens": "55" + PUZZLE[2:],
    "several solutions": "." * 81,
    "wrong array shape": np.zeros((8, 9), dtype=np.int64),
    "out of range digit": np.full(81, 12),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_puzzle_options_raise_value_error(name):
    env = scripted_env("sudoku")
    with pytest.raises(ValueError) as err:
        env.reset(options={"puzzle": MALFORMED[name]})
    assert str(err.value)  # the message says what is wrong


def test_unknown_reset_option_is_named():
    with pytest.raises(ValueError, match="'puzle'"):
        scripted_env("sudoku").reset(options={"puzle": PUZZLE})


@pytest.mark.parametrize("options", [[1], "puzzle", ("puzzle", PUZZLE), 3])
def test_reset_options_that_are_not_a_dict_are_named(options):
    with pytest.raises(ValueError, match=r"^options must be None or a dict .*'puzzle'.*, got "):
        scripted_env("sudoku").reset(options=options)


def test_dataset_puzzles_are_drawn_from_the_file(tmp_path):
    path = tmp_path / "few.txt"
    second = "." + SOLUTION[1:40] + "." * 5 + SOLUTION[45:]
    path.write_text(f"# two puzzles\n{PUZZLE}\n{second}\n")
    env = scripted_env("sudoku", dataset=path)
    seen = set()
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        seen.add("".join(str(v) if v else "." for v in obs["puzzle"]))
        assert "".join(map(str, env.solution)) == SOLUTION
    assert seen == {PUZZLE, second}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [2, -1, 0.5, "halt", np.array([0, 1]), True])
def test_bad_action_raises(action):
    env = scripted_env("sudoku-mini")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="0 \\(continue\\) or 1 \\(halt\\)"):
        env.step(action)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        scripted_env("sudoku-mini").step(0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"difficulty": "impossible"}, "unknown difficulty 'impossible'"),
        ({"reward": "dense"}, "unknown reward 'dense'"),
        ({"step_cost": -0.1}, "step_cost"),
        ({"step_cost": float("nan")}, "step_cost"),
        ({"max_cycles": 0}, "max_cycles"),
        ({"render_mode": "ansi"}, "render_mode"),
        ({"difficulty": "easy", "dataset": "x.csv"}, "dataset or difficulty"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scripted_env("sudoku", **kwargs)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'chess'.*sudoku"):
        ReasoningEnv("chess")


def test_reasoner_for_another_task_is_refused():
    with pytest.raises(ValueError, match="does not fit task 'sudoku'"):
        ReasoningEnv("sudoku", reasoner=ScriptedReasoner("maze"))


def test_missing_checkpoint_raises_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ReasoningEnv("sudoku", checkpoint=tmp_path / "nope")


def test_missing_shipped_checkpoint_raises_clearly_on_reset(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    import hrm_agent.reasoner

    monkeypatch.setattr(hrm_agent.reasoner, "shipped_checkpoint", lambda task: tmp_path / task)
    env = ReasoningEnv("sudoku-mini")
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint for task 'sudoku-mini'"):
        env.reset(seed=0)


@pytest.mark.parametrize("latent", [False, True])
def test_a_device_torch_cannot_use_is_a_value_error_naming_it(monkeypatch, latent):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # even on a GPU machine
    match = r"^device 'cuda': .*; available here: cpu"
    with pytest.raises(ValueError, match=match):
        # The model loads at construction with latent=True, else on the first reset.
        env = gym.make("HRM-SudokuMini-v0", device="cuda", latent=latent)
        env.reset(seed=0)


def test_close_twice_is_safe():
    env = gym.make("HRM-SudokuMini-v0", reasoner=ScriptedReasoner("sudoku-mini"))
    env.close()
    env.close()
    env = scripted_env("sudoku", render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render() is not None
    env.close()
    env.close()


@pytest.mark.parametrize("env_id", ["HRM-SudokuMini-v0", "HRM-Maze-v0"])
def test_an_env_that_loads_its_own_model_sets_the_threads_asked_for(
    env_id, monkeypatch, tiny_reasoner
):
    torch = pytest.importorskip("torch")
    import hrm_agent
    from hrm_agent.devices import _TORCH_DEFAULT_THREADS, DEFAULT_INFERENCE_THREADS

    task = {"HRM-SudokuMini-v0": "sudoku-mini", "HRM-Maze-v0": "maze"}[env_id]
    model = tiny_reasoner(task)  # made first: making it sets one thread
    monkeypatch.setattr(hrm_agent, "load_pretrained", lambda task, **kw: model)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        env = gym.make(env_id, threads=1)
        env.reset(seed=0)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        env = gym.make(env_id, threads=None)  # leave torch's setting alone
        env.reset(seed=0)
        assert torch.get_num_threads() == 2
        envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
        envs.reset(seed=0)  # the shared default
        assert torch.get_num_threads() == (DEFAULT_INFERENCE_THREADS or _TORCH_DEFAULT_THREADS)
    finally:
        torch.set_num_threads(before)
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match=r"^threads must be an integer >= 1"):
            gym.make(env_id, threads=bad)
