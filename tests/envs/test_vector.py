"""The batched env and the stable-baselines3 adapter: equal to N single envs, one call per step."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.envs.vector import ReasoningVectorEnv


class CountingReasoner:
    """Wraps a reasoner and counts its calls (and the batch each one saw)."""

    def __init__(self, inner):
        self.inner = inner
        self.task, self.seq_len = inner.task, inner.seq_len
        self.vocab_size, self.latent_size = inner.vocab_size, inner.latent_size
        self.cycles: list[int] = []
        self.resets: list[np.ndarray | None] = []

    def reset(self, inputs, state=None, mask=None):
        self.resets.append(None if mask is None else np.asarray(mask).copy())
        return self.inner.reset(inputs, state, mask)

    def cycle(self, state):
        state, out = self.inner.cycle(state)
        self.cycles.append(out.logits.shape[0])
        return state, out


def test_make_vec_gives_the_batched_env():
    envs = gym.make_vec(
        "HRM-SudokuMini-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        reasoner=ScriptedReasoner("sudoku-mini"),
    )
    assert isinstance(envs, ReasoningVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert envs.num_envs == 3
    assert envs.action_space == gym.spaces.MultiDiscrete([2, 2, 2])
    obs, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert obs["puzzle"].shape == (3, 16) and obs["q"].shape == (3, 2)
    assert envs.single_observation_space["puzzle"].shape == (16,)
    assert infos["solved"].shape == (3,) and infos["_solved"].all()
    envs.close()
    envs.close()


def single_envs_reference(task, n, seed, actions, make_reasoner, **kwargs):
    """What N single envs do with Gymnasium's next-step autoreset (a SyncVectorEnv)."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: ReasoningEnv(task, reasoner=make_reasoner(), **kwargs) for _ in range(n)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    out = [envs.reset(seed=seed)]
    out += [envs.step(a) for a in actions]
    envs.close()
    return out


def batched(task, n, seed, actions, reasoner, **kwargs):
    envs = ReasoningVectorEnv(n, task, reasoner=reasoner, **kwargs)
    out = [envs.reset(seed=seed)]
    out += [envs.step(a) for a in actions]
    return out


INFO_KEYS = ("solved", "cell_accuracy", "cycles", "q_halt_prob", "rating")


def compare(ref, got, exact=True):
    assert len(ref) == len(got)
    for t, (r, g) in enumerate(zip(ref, got, strict=True)):
        robs, gobs = r[0], g[0]
        for key in robs:
            if exact or robs[key].dtype == np.uint8:
                np.testing.assert_array_equal(robs[key], gobs[key], err_msg=f"step {t} {key}")
            else:
                np.testing.assert_allclose(robs[key], gobs[key], atol=2e-4, err_msg=f"{t} {key}")
        if len(r) == 5:
            np.testing.assert_allclose(r[1], g[1], atol=1e-12, err_msg=f"step {t} rewards")
            np.testing.assert_array_equal(r[2], g[2], err_msg=f"step {t} terminated")
            np.testing.assert_array_equal(r[3], g[3])
        rinfo, ginfo = r[-1], g[-1]
        for key in INFO_KEYS:
            if exact or key not in ("q_halt_prob",):
                np.testing.assert_array_equal(rinfo[key], ginfo[key], err_msg=f"{t} {key}")


@pytest.mark.parametrize("task", ["sudoku", "maze"])
def test_batched_env_equals_n_single_envs(task):
    n, steps = 5, 14
    actions = (np.random.default_rng(1).random((steps, n)) < 0.35).astype(np.int64)
    kwargs = dict(max_cycles=4, step_cost=0.02, reward="cells")
    ref = single_envs_reference(
        task, n, 11, actions, lambda: ScriptedReasoner(task, solve_at=3), **kwargs
    )
    got = batched(task, n, 11, actions, ScriptedReasoner(task, solve_at=3), **kwargs)
    compare(ref, got)
    # The test means something only if episodes ended and restarted along the way.
    assert sum(int(r[2].sum()) for r in ref[1:]) >= n


def test_batched_env_equals_n_single_envs_with_a_real_model(tiny_reasoner):
    n, steps = 4, 10
    actions = (np.random.default_rng(2).random((steps, n)) < 0.3).astype(np.int64)
    reasoner = tiny_reasoner("sudoku-mini")
    ref = single_envs_reference("sudoku-mini", n, 5, actions, lambda: reasoner, max_cycles=4)
    got = batched("sudoku-mini", n, 5, actions, reasoner, max_cycles=4)
    compare(ref, got, exact=False)


def test_one_reasoner_call_per_step_and_only_finished_rows_restart():
    n = 6
    counter = CountingReasoner(ScriptedReasoner("sudoku-mini", solve_at=2))
    envs = ReasoningVectorEnv(n, "sudoku-mini", reasoner=counter, max_cycles=8)
    obs, _ = envs.reset(seed=0)
    assert counter.cycles == [n] and counter.resets == [None]
    halt_first = np.array([1, 0, 0, 0, 0, 0])
    obs, rewards, terminated, _, _ = envs.step(halt_first)
    assert terminated.tolist() == [True] + [False] * 5
    assert obs["cycle"][:, 0].tolist() == [1, 2, 2, 2, 2, 2]  # the halted row did not advance
    obs, rewards, terminated, _, _ = envs.step(np.zeros(n, dtype=np.int64))
    # Row 0 restarted (reward 0, action ignored) while the others advanced a cycle.
    assert obs["cycle"][:, 0].tolist() == [1, 3, 3, 3, 3, 3]
    assert rewards[0] == 0.0 and not terminated.any()
    assert counter.resets[-1].tolist() == [True] + [False] * 5
    assert counter.cycles == [n, n, n]


def test_batched_seeds_per_sub_env():
    envs = ReasoningVectorEnv(3, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"))
    a, _ = envs.reset(seed=[4, 5, 4])
    np.testing.assert_array_equal(a["puzzle"][0], a["puzzle"][2])
    b, _ = envs.reset(seed=4)
    np.testing.assert_array_equal(a["puzzle"][:2], b["puzzle"][:2])


def test_a_puzzle_source_serves_rows_then_none_restores_the_seeded_streams():
    from hrm_env.puzzles.tasks import get_task

    task = get_task("sudoku-mini")
    bank = task.sample(np.random.default_rng(7), 5, None)
    served = []

    def source(row):
        k = len(served)
        served.append(row)
        return bank.inputs[k], bank.targets[k], int(bank.ratings[k])

    envs = ReasoningVectorEnv(3, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"))
    envs.set_puzzle_source(source)
    obs, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(obs["puzzle"], bank.inputs[:3])
    envs.step(np.array([0, 1, 1]))  # rows 1 and 2 halt, restart on the next step
    obs, *_ = envs.step(np.zeros(3, dtype=np.int64))
    assert served == [0, 1, 2, 1, 2]
    np.testing.assert_array_equal(obs["puzzle"][1:], bank.inputs[3:5])
    np.testing.assert_array_equal(obs["puzzle"][0], bank.inputs[0])  # row 0 kept thinking

    envs.set_puzzle_source(None)
    again, _ = envs.reset(seed=0)
    fresh, _ = ReasoningVectorEnv(3, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini")).reset(
        seed=0
    )
    np.testing.assert_array_equal(again["puzzle"], fresh["puzzle"])
    with pytest.raises(TypeError, match="callable"):
        envs.set_puzzle_source(bank)


@pytest.mark.parametrize(
    "actions", [np.array([0, 1]), np.array([0, 2, 1]), np.array([0.0, 1.0, 0.0]), [[0, 1, 0]]]
)
def test_batched_bad_actions_raise(actions):
    envs = ReasoningVectorEnv(3, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be"):
        envs.step(actions)


@pytest.mark.parametrize("options", [[1], "puzzle", 0])
def test_batched_reset_options_that_are_not_a_dict_are_named(options):
    envs = ReasoningVectorEnv(2, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"))
    with pytest.raises(ValueError, match=r"^options must be None or an empty dict"):
        envs.reset(options=options)


def test_batched_env_refuses_a_device_torch_cannot_use(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # even on a GPU machine
    envs = ReasoningVectorEnv(2, "sudoku-mini", device="cuda")
    with pytest.raises(ValueError, match=r"^device 'cuda': .*; available here: cpu"):
        envs.reset(seed=0)


def test_batched_render_gives_a_frame_per_sub_env():
    envs = ReasoningVectorEnv(
        2, "sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), render_mode="rgb_array"
    )
    envs.reset(seed=0)
    envs.step(np.array([0, 1]))
    frames = envs.render()
    assert len(frames) == 2
    assert frames[0].shape == frames[1].shape and frames[0].ndim == 3
    assert not np.array_equal(frames[0], frames[1])


# -- the stable-baselines3 adapter ---------------------------------------------------------------


def test_sb3_adapter_resets_in_the_same_step_like_dummy_vec_env():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from hrm_env.envs.sb3 import HRMVecEnv

    n, steps = 4, 12
    actions = (np.random.default_rng(3).random((steps, n)) < 0.4).astype(np.int64)
    kwargs = dict(max_cycles=3, step_cost=0.05)
    ours = HRMVecEnv.make("sudoku-mini", n, reasoner=ScriptedReasoner("sudoku-mini"), **kwargs)
    ref = DummyVecEnv(
        [
            lambda: ReasoningEnv("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), **kwargs)
            for _ in range(n)
        ]
    )
    for venv in (ours, ref):
        venv.seed(21)
    o1, o2 = ours.reset(), ref.reset()
    ended = 0
    for a in actions:
        for key in o2:
            np.testing.assert_array_equal(o1[key], o2[key])
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        for i in np.flatnonzero(d1):
            ended += 1
            assert i1[i]["TimeLimit.truncated"] is False
            assert i1[i]["is_success"] == i1[i]["solved"]
            assert o1["cycle"][i, 0] == 1  # already the new episode's first observation
            for key, value in i2[i]["terminal_observation"].items():
                np.testing.assert_array_equal(i1[i]["terminal_observation"][key], value)
    assert ended >= n
    ours.close()
    ours.close()


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_sb3_learns_on_the_single_env_and_on_the_batched_adapter(algo):
    import stable_baselines3
    from stable_baselines3.common.vec_env import VecMonitor

    from hrm_env.envs.sb3 import HRMVecEnv

    cls = getattr(stable_baselines3, algo)
    extra = (
        dict(n_steps=64, batch_size=64, n_epochs=1)
        if algo == "PPO"
        else dict(learning_starts=32, buffer_size=1000, train_freq=4)
    )
    single = ReasoningEnv("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), max_cycles=5)
    batched_env = VecMonitor(
        HRMVecEnv.make("sudoku-mini", 8, reasoner=ScriptedReasoner("sudoku-mini"), max_cycles=5)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for env in (single, batched_env):
            model = cls("MultiInputPolicy", env, seed=0, device="cpu", verbose=0, **extra)
            model.learn(total_timesteps=256)
            assert model.num_timesteps >= 256
            action, _ = model.predict(env.observation_space.sample(), deterministic=True)
            assert int(np.asarray(action).reshape(-1)[0]) in (0, 1)
