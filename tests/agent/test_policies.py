"""Halting policies on scripted reasoners, evaluate_policy by hand, recordings, the SB3 wrapper."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_agent.policies import (
    ConfidencePolicy,
    FixedCyclesPolicy,
    HaltingPolicy,
    QHeadPolicy,
    RecordedReasoner,
    SB3Policy,
    StablePolicy,
    answer_logits,
    evaluate_policy,
    infer_sb3_algo,
)
from hrm_env.envs.defaults import cycle_limit
from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.envs.reasoning import read_answer
from hrm_env.envs.vector import ReasoningVectorEnv
from hrm_env.puzzles.tasks import get_task

TASK = "sudoku-mini"


@pytest.fixture(scope="module")
def puzzles():
    batch = get_task(TASK).test_set()[:7]
    assert len({row.tobytes() for row in batch.inputs}) == 7  # distinct: scripts key on them
    return batch


def obs_batch(cycle, prediction=None, q=None, S=16):
    cycle = np.asarray(cycle, dtype=np.float32).reshape(-1, 1)
    B = len(cycle)
    return {
        "puzzle": np.zeros((B, S), dtype=np.uint8),
        "prediction": np.zeros((B, S), np.uint8)
        if prediction is None
        else np.asarray(prediction, np.uint8),
        "confidence": np.full((B, S), 0.5, dtype=np.float32),
        "q": np.zeros((B, 2), np.float32) if q is None else np.asarray(q, np.float32),
        "cycle": cycle,
    }


def test_baselines_implement_the_protocol():
    for policy in (
        QHeadPolicy(),
        FixedCyclesPolicy(2),
        ConfidencePolicy(0.9, TASK),
        StablePolicy(1),
    ):
        assert isinstance(policy, HaltingPolicy)
        assert policy.name


@pytest.mark.parametrize(
    "make", [lambda: FixedCyclesPolicy(0), lambda: StablePolicy(0),
             lambda: ConfidencePolicy(1.5, TASK), lambda: ConfidencePolicy(0.5, TASK, cells="x")]
)  # fmt: skip
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


# -- fixed k ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_fixed_k_halts_exactly_at_k(puzzles, k):
    reasoner = ScriptedReasoner(TASK, solve_at=3)
    result = evaluate_policy(
        FixedCyclesPolicy(k), TASK, puzzles, max_cycles=4, reasoner=reasoner, batch_size=3
    )
    assert (result.cycles == min(k, 4)).all()  # the env halts by itself at max_cycles
    assert result.exact_accuracy == (1.0 if min(k, 4) >= 3 else 0.0)


def test_fixed_k_acts_on_the_cycle_count():
    actions = FixedCyclesPolicy(3).act(obs_batch([1, 2, 3, 4]))
    np.testing.assert_array_equal(actions, [0, 0, 1, 1])
    assert actions.dtype == np.int64


# -- Q head -------------------------------------------------------------------------------------


def test_q_head_halts_when_q_halt_exceeds_q_continue(puzzles):
    # Cycle 2 ties (0 vs 0): a tie is not "greater", so the policy halts on cycle 3.
    q = np.array([[-1.0, 0.0], [0.0, 0.0], [0.5, 0.0], [-2.0, 0.0]])
    reasoner = ScriptedReasoner(TASK, q=q, solve_at=1)
    result = evaluate_policy(
        QHeadPolicy(), TASK, puzzles, max_cycles=6, reasoner=reasoner, batch_size=4
    )
    assert (result.cycles == 3).all()


@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=8))
def test_q_head_action_is_the_sign_of_the_q_gap(pairs):
    q = np.array(pairs, dtype=np.float32)
    actions = QHeadPolicy().act(obs_batch(np.ones(len(q)), q=q))
    np.testing.assert_array_equal(actions, (q[:, 0] > q[:, 1]).astype(int))


# -- confidence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold, cycle", [(0.2, 1), (0.6, 3), (0.8, 4), (0.95, 5)])
def test_threshold_halts_at_the_first_cycle_whose_mean_confidence_passes(puzzles, threshold, cycle):
    # Every cell has confidence 0.3, 0.5, 0.7, 0.9, 0.9, ... on cycles 1, 2, 3, 4, 5, ...
    reasoner = ScriptedReasoner(TASK, confidence=np.array([0.3, 0.5, 0.7, 0.9]))
    result = evaluate_policy(
        ConfidencePolicy(threshold, TASK), TASK, puzzles, max_cycles=5, reasoner=reasoner,
        batch_size=3,
    )  # fmt: skip
    assert (result.cycles == cycle).all()


@pytest.mark.parametrize("cells", ["scored", "all"])
def test_threshold_averages_over_the_blank_cells_by_default(puzzles, cells):
    # The default script fills the blanks of puzzle i in proportion to the cycles and settles
    # them at solve_at; settled cells (givens and filled) are 0.95 sure, the rest 0.4.
    solve_at, threshold, max_cycles = 4, 0.7, 6
    reasoner = ScriptedReasoner(TASK, solve_at=solve_at)
    result = evaluate_policy(
        ConfidencePolicy(threshold, TASK, cells=cells), TASK, puzzles, max_cycles=max_cycles,
        reasoner=reasoner, batch_size=3,
    )  # fmt: skip
    expected = []
    for inputs in puzzles.inputs:
        blanks = int((inputs == 0).sum())
        for c in range(1, max_cycles + 1):
            filled = blanks if c >= solve_at else min(blanks * c // solve_at, blanks - 1)
            if cells == "scored":
                mean = (0.95 * filled + 0.4 * (blanks - filled)) / blanks
            else:
                mean = (0.95 * (16 - blanks + filled) + 0.4 * (blanks - filled)) / 16
            if mean > threshold + 1e-6:
                break
        expected.append(c)
    np.testing.assert_array_equal(result.cycles, expected)


def test_threshold_counts_a_puzzle_without_blanks_as_sure():
    obs = obs_batch([1, 1])
    obs["puzzle"][0] = 1  # no blank cell
    obs["confidence"][:] = 0.1
    np.testing.assert_array_equal(ConfidencePolicy(0.9, TASK).act(obs), [1, 0])


# -- answer stable ------------------------------------------------------------------------------

# Answers (every cell one token) on cycles 1..8, then the last one again.
STABLE_SCRIPT = np.repeat(np.array([1, 2, 2, 2, 3, 3, 3, 3])[:, None], 16, axis=1)


def test_without_max_cycles_the_env_s_own_limit_applies(puzzles):
    # A policy that never halts runs until the env stops it: the limit must be the one
    # gym.make would give (the model's own N x max_segments), not a number of evaluate_policy's.
    reasoner = ScriptedReasoner(TASK, solve_at=3)
    reasoner.model = SimpleNamespace(config=SimpleNamespace(max_cycles=7))  # a model's own 7
    assert cycle_limit(TASK, reasoner) == 7
    result = evaluate_policy(FixedCyclesPolicy(10_000), TASK, puzzles, reasoner=reasoner)
    assert (result.cycles == 7).all()
    assert result.max_cycles == 7


@pytest.mark.parametrize("m, cycle", [(1, 3), (2, 4), (3, 8), (4, 9), (9, 10)])
def test_stable_halts_after_m_unchanged_cycles(puzzles, m, cycle):
    reasoner = ScriptedReasoner(TASK, answers=STABLE_SCRIPT)
    result = evaluate_policy(
        StablePolicy(m), TASK, puzzles, max_cycles=10, reasoner=reasoner, batch_size=3
    )
    assert (result.cycles == cycle).all()


def test_stable_memory_resets_across_episodes_on_the_batched_env(puzzles):
    # The answer never changes, not even across puzzles: a memory that leaked from one episode
    # into the next would see it "unchanged" from cycle 1 on and halt there.
    reasoner = ScriptedReasoner(TASK, answers=np.full((1, 16), 5))
    result = evaluate_policy(
        StablePolicy(2), TASK, puzzles, max_cycles=6, reasoner=reasoner, batch_size=2
    )
    assert (result.cycles == 3).all()


def test_stable_ignores_a_repeated_final_observation():
    # Next-step autoreset shows a halted row's final observation again, then the new episode.
    policy = StablePolicy(2)
    policy.reset(1)
    same = np.full((1, 16), 4)
    assert policy.act(obs_batch([1], same))[0] == 0
    assert policy.act(obs_batch([2], same))[0] == 0  # unchanged once
    assert policy.act(obs_batch([3], same))[0] == 1  # twice: halt
    assert policy.act(obs_batch([3], same))[0] == 1  # the same observation again: no change
    assert policy.act(obs_batch([1], same))[0] == 0  # a new episode starts from scratch


# -- evaluate_policy ----------------------------------------------------------------------------

SOLVE_AT = [1, 2, 3, 4, 5, 6, 99]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_evaluate_policy_matches_a_hand_computation(puzzles, batch_size, solve_script):
    answers, q = solve_script(puzzles, SOLVE_AT)
    reasoner = ScriptedReasoner(TASK, answers=answers, q=q)
    step_cost, max_cycles = 0.1, 5
    s = np.array(SOLVE_AT)

    fixed = evaluate_policy(
        FixedCyclesPolicy(3), TASK, puzzles, step_cost, max_cycles, reasoner, batch_size
    )
    solved = s <= 3
    np.testing.assert_array_equal(fixed.solved, solved)
    np.testing.assert_array_equal(fixed.cycles, [3] * 7)
    np.testing.assert_allclose(fixed.returns, solved - 0.2)
    assert fixed.exact_accuracy == pytest.approx(3 / 7)
    assert fixed.mean_cycles == 3.0
    assert fixed.mean_return == pytest.approx(3 / 7 - 0.2)

    # The Q head halts one cycle after solving, or at the limit: cycles 2, 3, 4, 5, 5, 5, 5.
    qhead = evaluate_policy(
        QHeadPolicy(), TASK, puzzles, step_cost, max_cycles, reasoner, batch_size
    )
    cycles = np.minimum(s + 1, max_cycles)
    solved = cycles >= s
    np.testing.assert_array_equal(qhead.cycles, cycles)
    np.testing.assert_array_equal(qhead.solved, solved)
    np.testing.assert_allclose(qhead.returns, solved - step_cost * (cycles - 1))
    assert qhead.mean_return == pytest.approx(np.mean(solved - step_cost * (cycles - 1)))
    assert qhead.exact_accuracy == pytest.approx(5 / 7)

    records = qhead.to_dict()["records"]
    assert [r["puzzle"] for r in records] == list(range(7))
    assert records[6] == {"puzzle": 6, "cycles": 5, "solved": False, "return": pytest.approx(-0.4),
                          "cell_accuracy": 0.0}  # fmt: skip
    summary = qhead.to_dict(records=False)
    assert "records" not in summary and summary["n"] == 7 and summary["policy"] == "q-head"


def test_evaluate_policy_takes_an_env_factory(puzzles, solve_script):
    answers, q = solve_script(puzzles, SOLVE_AT)

    def make_env(n):
        return ReasoningVectorEnv(
            n, TASK, reasoner=ScriptedReasoner(TASK, answers=answers, q=q), step_cost=0.1,
            max_cycles=5,
        )  # fmt: skip

    result = evaluate_policy(FixedCyclesPolicy(2), make_env, puzzles, batch_size=2)
    np.testing.assert_array_equal(result.solved, np.array(SOLVE_AT) <= 2)
    assert result.step_cost == 0.1 and result.max_cycles == 5
    with pytest.raises(ValueError, match="step_cost"):
        evaluate_policy(FixedCyclesPolicy(2), make_env, puzzles, step_cost=0.5)


def test_evaluate_policy_rejects_bad_actions_and_inputs(puzzles):
    class Bad:
        name = "bad"

        def reset(self, n_envs):
            pass

        def act(self, obs):
            return np.full(len(obs["cycle"]), 2)

    reasoner = ScriptedReasoner(TASK)
    with pytest.raises(ValueError, match="bad"):
        evaluate_policy(Bad(), TASK, puzzles, reasoner=reasoner)
    with pytest.raises(ValueError, match="empty"):
        evaluate_policy(QHeadPolicy(), TASK, puzzles[:0], reasoner=reasoner)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_policy(QHeadPolicy(), TASK, puzzles, reasoner=reasoner, batch_size=0)
    with pytest.raises(ValueError, match="cells"):
        evaluate_policy(QHeadPolicy(), "sudoku", puzzles, reasoner=ScriptedReasoner("sudoku"))


# -- recordings ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=6),
    st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
)
def test_answer_logits_round_trip_through_read_answer(tokens, confidences):
    prediction = np.array(tokens)
    # A recorded confidence is a max softmax probability: never below 1/V.
    conf = np.maximum(np.array(confidences[: len(tokens)], dtype=np.float32), 0.1)
    pred, back = read_answer(answer_logits(prediction, conf, 10))
    np.testing.assert_array_equal(pred, prediction)
    np.testing.assert_allclose(back, conf, atol=2e-6)


def policies_for(task):
    return [QHeadPolicy(), FixedCyclesPolicy(2), ConfidencePolicy(0.6, task), StablePolicy(1)]


def test_a_recording_replays_what_the_live_reasoner_gives(puzzles, tmp_path, solve_script):
    answers, q = solve_script(puzzles, SOLVE_AT)
    live = ScriptedReasoner(TASK, answers=answers, q=q, confidence=np.array([0.3, 0.65, 0.9]))
    recording = RecordedReasoner.record(live, puzzles, cycles=5, batch_size=3)
    loaded = RecordedReasoner.load(recording.save(tmp_path / "rec.npz"))
    for policy in policies_for(TASK):
        a = evaluate_policy(policy, TASK, puzzles, 0.1, 5, live, batch_size=3)
        for replay in (recording, loaded):
            b = evaluate_policy(policy, TASK, puzzles, 0.1, 5, replay, batch_size=2)
            np.testing.assert_array_equal(a.cycles, b.cycles)
            np.testing.assert_array_equal(a.solved, b.solved)
            np.testing.assert_allclose(a.returns, b.returns)
    solved_by = np.arange(1, 6)[None] >= np.array(SOLVE_AT)[:, None]  # (P, C)
    np.testing.assert_array_equal(recording.correct(puzzles.targets), solved_by)
    np.testing.assert_array_equal(loaded.correct(), solved_by)  # the answers were recorded too
    np.testing.assert_array_equal(loaded.puzzles().targets, puzzles.targets)
    assert loaded.matches(puzzles, 5) and not loaded.matches(puzzles, 6)
    assert not loaded.matches(puzzles[:3], 5)


def test_a_recording_of_a_torch_model_replays_it(puzzles, tiny_reasoner):
    live = tiny_reasoner(TASK)
    recording = RecordedReasoner.record(live, puzzles, cycles=4, batch_size=4)
    for policy in policies_for(TASK):
        a = evaluate_policy(policy, TASK, puzzles, 0.01, 4, live, batch_size=3)
        b = evaluate_policy(policy, TASK, puzzles, 0.01, 4, recording, batch_size=5)
        np.testing.assert_array_equal(a.cycles, b.cycles)
        np.testing.assert_allclose(a.cell_accuracies, b.cell_accuracies)


def test_a_recording_refuses_unknown_puzzles(puzzles):
    recording = RecordedReasoner.record(ScriptedReasoner(TASK), puzzles[:3], cycles=2)
    with pytest.raises(ValueError, match="not in the recording"):
        recording.reset(puzzles.inputs[3:5])


# -- stable-baselines3 --------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_sb3_policy_round_trips_save_and_load(puzzles, tmp_path, algo):
    sb3 = pytest.importorskip("stable_baselines3")
    from hrm_env.envs.sb3 import HRMVecEnv

    latent = algo == "ppo"  # one of each: with and without z_H
    venv = HRMVecEnv.make(TASK, num_envs=4, reasoner=ScriptedReasoner(TASK, solve_at=2),
                          max_cycles=4, latent=latent)  # fmt: skip
    if algo == "dqn":
        model = sb3.DQN("MultiInputPolicy", venv, learning_starts=32, buffer_size=500,
                        train_freq=4, seed=0, device="cpu")  # fmt: skip
    else:
        model = sb3.PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1,
                        seed=0, device="cpu")  # fmt: skip
    model.learn(128)
    path = tmp_path / "policy.zip"
    model.save(path)
    assert infer_sb3_algo(path) == algo

    original = SB3Policy(model)
    loaded = SB3Policy.from_path(path)
    assert loaded.needs_latent == latent
    obs = venv.reset()
    for _ in range(5):
        actions = original.act(obs)
        np.testing.assert_array_equal(loaded.act(obs), actions)
        obs, *_ = venv.step(actions)
    venv.close()

    a = evaluate_policy(
        original, TASK, puzzles, max_cycles=4, reasoner=ScriptedReasoner(TASK, solve_at=2)
    )
    b = evaluate_policy(
        loaded, TASK, puzzles, max_cycles=4, reasoner=ScriptedReasoner(TASK, solve_at=2)
    )
    np.testing.assert_array_equal(a.cycles, b.cycles)
    assert b.policy == f"{algo}:policy"


def test_sb3_policy_from_a_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        SB3Policy.from_path(tmp_path / "nothing.zip")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a stable-baselines3"):
        infer_sb3_algo(bad)


def test_the_sb3_halting_example_runs_in_tiny_mode(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "sb3_halting.py"
    spec = importlib.util.spec_from_file_location("sb3_halting", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "run"
    code = example.main(["--tiny", "--algo", "dqn", "--timesteps", "256", "--eval-freq", "128",
                         "--threads", "1", "--out", str(out)])  # fmt: skip
    assert code == 0  # the reloaded policy acted as the trained one
    summary = json.loads((out / "dqn.json").read_text())
    assert [r["policy"] for r in summary["results"]] == ["q-head", "dqn"]
    assert summary["reload_same_actions"] and (out / "dqn.zip").is_file()
    assert any((out / "tb").iterdir())  # TensorBoard logs
    assert (out / "eval" / "evaluations.npz").is_file()  # the EvalCallback ran
    assert "q-head" in capsys.readouterr().out
