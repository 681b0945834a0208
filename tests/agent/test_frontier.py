"""The accuracy-compute frontier: Pareto marking, the Python API on a script, ``hrm frontier``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hrm_agent.cli import main as hrm
from hrm_agent.frontier import (
    Entry,
    baseline_entries,
    pareto_front,
    plot_frontier,
    run_frontier,
)
from hrm_agent.policies import FixedCyclesPolicy, QHeadPolicy, RecordedReasoner
from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.puzzles.tasks import get_task

TASK = "sudoku-mini"


def dominates(a, b):
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), min_size=1, max_size=12))
def test_pareto_front_keeps_exactly_the_undominated_points(points):
    acc = [a / 5 for a, _ in points]
    cyc = [float(c) for _, c in points]
    front = pareto_front(acc, cyc)
    pts = list(zip(acc, cyc, strict=True))
    for i, p in enumerate(pts):
        assert front[i] == (not any(dominates(q, p) for q in pts))
    assert front.any()  # the most accurate of the cheapest is never dominated


def test_pareto_front_by_hand():
    front = pareto_front([0.5, 0.5, 0.9, 0.8, 0.9], [2, 3, 5, 5, 4])
    np.testing.assert_array_equal(front, [True, False, False, False, True])


@pytest.fixture(scope="module")
def scripted(solve_script):
    """Puzzle i becomes correct on cycle i + 1 (i < 4) and stays so; the Q head halts two
    cycles after that."""
    puzzles = get_task(TASK).test_set()[:4]
    answers, q = solve_script(puzzles, [1, 2, 3, 4], halt_after=2)
    return puzzles, ScriptedReasoner(TASK, answers=answers, q=q)


def test_run_frontier_on_a_scripted_model(scripted):
    puzzles, reasoner = scripted
    recording = RecordedReasoner.record(reasoner, puzzles, cycles=4)
    entries = [Entry("fixed", f"k={k}", FixedCyclesPolicy(k)) for k in (1, 2, 3, 4)]
    entries.append(Entry("q-head", "", QHeadPolicy()))
    points = run_frontier(recording, TASK, puzzles, entries, step_cost=0.1, max_cycles=4,
                          batch_size=3, oracle=recording)  # fmt: skip
    acc = [p.result.exact_accuracy for p in points]
    cycles = [p.result.mean_cycles for p in points]
    # fixed k solves the puzzles with solve cycle <= k; the Q head halts at min(s + 2, 4).
    assert acc[:4] == [0.25, 0.5, 0.75, 1.0] and cycles[:4] == [1, 2, 3, 4]
    assert acc[4] == 1.0 and cycles[4] == pytest.approx(np.mean([3, 4, 4, 4]))
    # The Q head is as accurate as fixed-4 in fewer cycles: fixed-4 drops off the frontier.
    assert [p.on_frontier for p in points[:5]] == [True, True, True, False, True]
    oracle = points[-1]
    assert oracle.family == "oracle" and not oracle.on_frontier
    assert oracle.result.exact_accuracy == 1.0 and oracle.result.mean_cycles == 2.5
    assert oracle.result.mean_return == pytest.approx(1 - 0.1 * 1.5)
    assert oracle.result.mean_return >= max(p.result.mean_return for p in points[:5])


def test_the_plot_marks_the_frontier(scripted, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    puzzles, reasoner = scripted
    entries = baseline_entries(TASK, 4, thresholds=(0.5,), stable=(1,))
    points = run_frontier(reasoner, TASK, puzzles, entries, max_cycles=4)
    fig = plot_frontier(points, tmp_path / "f.png", title="t")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    front = sorted(
        (p.result.mean_cycles, 100 * p.result.exact_accuracy) for p in points if p.on_frontier
    )
    assert "Pareto frontier" in lines
    drawn = lines["Pareto frontier"]
    np.testing.assert_allclose(drawn.get_xdata(), [x for x, _ in front])
    np.testing.assert_allclose(drawn.get_ydata(), [y for _, y in front])
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hrm_frontier_runs_end_to_end_on_a_tiny_model(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sb3 = pytest.importorskip("stable_baselines3")
    import torch

    torch.set_num_threads(1)
    from hrm_env.envs.sb3 import HRMVecEnv

    # A briefly trained policy to put on the frontier next to the baselines.
    venv = HRMVecEnv.make("sudoku", num_envs=2, reasoner=ScriptedReasoner("sudoku"), max_cycles=3)
    dqn = sb3.DQN(
        "MultiInputPolicy", venv, learning_starts=10, buffer_size=100, seed=0, device="cpu"
    )
    dqn.learn(20)
    dqn.save(tmp_path / "dqn.zip")
    venv.close()

    out = tmp_path / "out"
    code = hrm([
        "frontier", "sudoku", "--preset", "tiny", "--n", "6", "--max-cycles", "3",
        "--thresholds", "0.5,0.9", "--stable", "1,2", "--batch-size", "4",
        "--finetune-q", "3", "--finetune-puzzles", "4", "--policies", str(tmp_path / "dqn.zip"),
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    with open(out / "frontier.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["policy"] for r in rows]
    assert names == [
        "q-head", "fixed-1", "fixed-2", "fixed-3", "confidence-0.5", "confidence-0.9",
        "stable-1", "stable-2", "q-head-ft", "dqn:dqn", "oracle",
    ]  # fmt: skip
    for r in rows:
        assert r["n"] == "6" and float(r["step_cost"]) == 0.01
        assert 1 <= float(r["mean_cycles"]) <= 3
    fixed = {r["policy"]: float(r["mean_cycles"]) for r in rows if r["family"] == "fixed"}
    assert fixed == {"fixed-1": 1.0, "fixed-2": 2.0, "fixed-3": 3.0}
    front = [r for r in rows if r["on_frontier"] == "True"]
    assert front and all(r["family"] != "oracle" for r in front)
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "frontier.json").read_text())
    assert summary["n"] == 6 and len(summary["points"]) == len(rows)
    captured = capsys.readouterr()
    assert "fixed-2" in captured.out and "frontier" in captured.out
    assert "recording 6 puzzles" in captured.err


def test_hrm_frontier_reuses_a_recording(tmp_path, capsys):
    args = ["frontier", "sudoku-mini", "--preset", "tiny", "--n", "5", "--max-cycles", "2",
            "--thresholds", "0.5", "--stable", "1", "--no-plot", "--recording",
            str(tmp_path / "cycles.npz")]  # fmt: skip
    assert hrm([*args, "--out", str(tmp_path / "a")]) == 0
    assert "recording 5 puzzles" in capsys.readouterr().err
    assert hrm([*args, "--out", str(tmp_path / "b")]) == 0
    assert "using the recorded cycles" in capsys.readouterr().err
    assert (tmp_path / "a" / "frontier.csv").read_text() == (
        tmp_path / "b" / "frontier.csv"
    ).read_text()
    assert not (tmp_path / "b" / "frontier.png").exists()


def test_hrm_frontier_reports_bad_arguments(tmp_path, capsys):
    code = hrm(
        ["frontier", "sudoku", "--preset", "tiny", "--checkpoint", "x", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "either --preset or --checkpoint" in capsys.readouterr().err
    code = hrm(["frontier", "chess", "--preset", "tiny", "--out", str(tmp_path)])
    assert code == 2
