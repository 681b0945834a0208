"""The helper scripts under scripts/ that rewrite or drive runs."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint_json(path: Path, lineage: list[dict]) -> None:
    path.write_text(json.dumps({"format": "hrm-checkpoint", "meta": {"lineage": lineage}}))


def test_cpu_equivalent_converts_device_runs_at_the_cpu_rate(tmp_path):
    cpu_equivalent = _script("cpu_equivalent")
    # A CPU run of the same config: batch 16 at 32 samples/s is 0.5 s a step.
    run = tmp_path / "cpu-run"
    run.mkdir()
    with open(run / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "samples_per_s"])
        writer.writerows([[10, 30.0], [20, 32.0], [30, 34.0]])
    (run / "model.json").write_text(
        json.dumps({"meta": {"device": "cpu", "train_config": {"batch_size": 16}}})
    )
    stem = tmp_path / "model"
    lineage = [
        {"run": "a", "steps": 100, "minutes": 2.0, "cpu_minutes": 1.5, "device": "cpu"},
        {"run": "b", "steps": 600, "minutes": 1.0, "cpu_minutes": 1.1, "device": "cuda (H200)"},
    ]
    _checkpoint_json(tmp_path / "model.json", lineage)
    assert cpu_equivalent.main([str(stem), "--rate-from", str(run)]) == 0
    meta = json.loads((tmp_path / "model.json").read_text())["meta"]
    a, b = meta["lineage"]
    assert "cpu_minutes_equivalent" not in a  # a CPU run keeps its measured time
    assert b["cpu_seconds_per_step"] == 0.5 and b["cpu_minutes_equivalent"] == 5.0
    assert meta["total_cpu_minutes"] == 6.5 and meta["total_cpu_minutes_complete"]
    assert meta["total_device_minutes"] == 1.0
    # A second pass changes nothing: converted runs keep their figure.
    assert cpu_equivalent.main([str(stem), "--seconds-per-step", "9"]) == 0
    assert json.loads((tmp_path / "model.json").read_text())["meta"]["lineage"][1] == b


def test_cpu_equivalent_refuses_a_rate_from_a_device_run(tmp_path):
    cpu_equivalent = _script("cpu_equivalent")
    run = tmp_path / "gpu-run"
    run.mkdir()
    (run / "train.csv").write_text("step,samples_per_s\n10,1000\n")
    (run / "model.json").write_text(
        json.dumps({"meta": {"device": "cuda:0", "train_config": {"batch_size": 16}}})
    )
    with pytest.raises(ValueError, match="not on the CPU"):
        cpu_equivalent.rate_from_run(run)


@pytest.mark.parametrize("sweep", ["cpu-equivalent", "smoke"])
def test_device_sweep_runs_are_valid_train_commands(sweep):
    import argparse

    from hrm_agent.training.command import add_arguments, config_from_args

    device_sweep = _script("device_sweep")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for name, (task, args) in device_sweep.SWEEPS[sweep].items():
        config = config_from_args(parser.parse_args([task, *args, "--compute-dtype", "float32"]))
        model = config.model_config()
        assert model.compute_dtype == "float32", name
        # The CPU recipe's batch, so that steps convert to CPU-minutes.
        assert config.batch_size == device_sweep._batch(args, task), name


def test_maze_ties_counts_the_shortest_paths_of_a_room_and_a_corridor():
    import numpy as np

    from hrm_env.puzzles import maze

    maze_ties = _script("maze_ties")
    grid = np.full((maze.SIDE, maze.SIDE), maze.WALL, dtype=np.uint8)
    grid[5:8, 5:11] = maze.OPEN  # a 3 x 6 room: S and G at opposite corners
    grid[5, 5], grid[7, 10] = maze.START, maze.GOAL
    # 2 moves down and 5 right in any order: C(7, 2) monotone paths.
    assert maze_ties.count_shortest_paths(grid) == 21
    grid[6:8, 5:10] = maze.WALL  # only the top row and the right column stay open
    grid[7, 10] = maze.GOAL
    assert maze_ties.count_shortest_paths(grid) == 1
    grid[6, 10] = maze.WALL
    assert maze_ties.count_shortest_paths(grid) == 0


def test_scaling_pools_disjoint_buckets_by_their_sizes():
    scaling = _script("scaling")
    short = {"group": "a", "n": 3, "exact_at": {"16": 1.0, "32": 1.0}, "q_exact": 1.0,
             "q_mean_cycles": 10.0, "curve": [0.0, 1.0]}  # fmt: skip
    long = {"group": "b", "n": 1, "exact_at": {"16": 0.0, "32": 1.0}, "q_exact": 0.0,
            "q_mean_cycles": 30.0, "curve": [0.0, 0.0]}  # fmt: skip
    pooled = scaling._pooled("hard", [short, long])
    assert pooled["group"] == "hard" and pooled["n"] == 4
    assert pooled["exact_at"] == {"16": 0.75, "32": 1.0}
    assert pooled["q_exact"] == 0.75 and pooled["q_mean_cycles"] == 15.0
    assert pooled["curve"] == [0.0, 0.75]


def test_maze_errors_sorts_wrong_answers_by_extra_and_missing_cells():
    from hrm_env.puzzles import maze

    classify = _script("maze_errors").classify
    # A 3x6 room, S top-left, G bottom-right, an alcove above S and a corridor below the room,
    # both on no shortest path.
    grid = np.full((maze.SIDE, maze.SIDE), maze.WALL, dtype=np.uint8)
    grid[5:9, 5:11] = maze.OPEN
    grid[4, 5] = maze.OPEN
    grid[5, 5], grid[7, 10] = maze.START, maze.GOAL
    q = grid.reshape(-1)

    def answer(cells):
        a = q.copy()
        a[[r * maze.SIDE + c for r, c in cells]] = maze.PATH
        return a

    top = [(5, c) for c in range(6, 11)] + [(6, 10)]
    bottom = [(6, 5), (7, 5)] + [(7, c) for c in range(6, 10)]
    assert classify(q, answer(top)) == ("correct", 0, 0)
    assert classify(q, answer(top + [(4, 5)])) == (
        "holds a shortest path, plus cells on no shortest path", 1, 0)  # fmt: skip
    assert classify(q, answer(top + bottom[:2])) == ("holds a shortest path, plus tied cells", 0, 0)
    assert classify(q, answer(top[:-1])) == ("no marked route from S to G", 0, 1)
    assert classify(q, answer(top[:-2] + [(4, 5)])) == (
        "no marked route from S to G, plus cells on no shortest path", 1, 2)  # fmt: skip
    detour = [(6, 5), (7, 5)] + [(8, c) for c in range(5, 11)]  # 9 moves where 7 do
    assert classify(q, answer(detour)) == (
        "connects S to G only by a longer route (a detour), plus cells on no shortest path",
        6, 4)  # fmt: skip


def test_default_episodes_plays_the_envs_as_a_first_user_makes_them(capsys, monkeypatch):
    pytest.importorskip("torch")
    import hrm_agent
    from hrm_env.envs.reasoner import ScriptedReasoner

    # The shipped model's place is taken by a script that solves at cycle 3 and whose Q head
    # says halt from then on, so the table's figures are known.
    monkeypatch.setattr(
        hrm_agent,
        "load_pretrained",
        lambda task, device="cpu", checkpoint=None: ScriptedReasoner(task, solve_at=3),
        raising=False,
    )
    default_episodes = _script("default_episodes")
    assert default_episodes.main(["--envs", "HRM-Sudoku-v0", "--episodes", "3", "--seed", "0"]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith('| `"HRM-Sudoku-v0"` | hard | 64 | 3/3 (100% +- 0) |')


def test_sample_frontier_compares_sources_then_draws_the_frontier(tmp_path):
    frontier = _script("sample_frontier")
    common = ["--data", "extreme-mix", "--n", "2", "--out", str(tmp_path)]
    frontier.main(["sources", *common, "--samples", "2", "--carry", "0.3", "--init", "",
                   "--dropout", "0.1"])  # fmt: skip
    sources = json.loads((tmp_path / "sources.json").read_text())
    assert [row["source"] for row in sources["rows"]] == ["carry 0.3", "dropout 0.1"]
    assert sources["best"]["source"] in {"carry 0.3", "dropout 0.1"}
    frontier.main(["frontier", *common, "--samples", "1,2", "--cycles", "8,16",
                   "--best", str(tmp_path / "sources.json")])  # fmt: skip
    result = json.loads((tmp_path / "frontier.json").read_text())
    entry = result["sets"]["extreme-mix"]
    assert set(entry["samples"]) == {"1", "2"} and set(entry["more_cycles"]) == {"8", "16"}
    # K = 1 is the plain model: every rule picks its only trajectory.
    assert len({v["exact_accuracy"] for v in entry["samples"]["1"].values()}) == 1
    with (tmp_path / "frontier.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["curve"] for r in rows} == {"q", "first", "vote", "checker", "more cycles"}
    assert (tmp_path / "frontier.png").stat().st_size > 0


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_threads_busy_core_spins_only_inside_its_block():
    bench = _benchmark("bench_threads")
    with bench.busy_core() as spinner:
        assert spinner.poll() is None  # running
    assert spinner.poll() is not None  # stopped and reaped after the block


def test_bench_threads_verdict_names_the_faster_setting_per_condition():
    bench = _benchmark("bench_threads")
    rows = [
        {"task": "sudoku", "workload": "env", "condition": "idle", "one": 2.0, "all": 1.0},
        {"task": "sudoku", "workload": "eval", "condition": "idle", "one": 3.0, "all": 1.0},
        {"task": "sudoku", "workload": "env", "condition": "busy", "one": 1.0, "all": 30.0},
        {"task": "sudoku", "workload": "eval", "condition": "busy", "one": 2.0, "all": 1.5},
    ]
    idle, busy, default = bench.verdict(rows, 2)
    assert idle.startswith("idle: 1 thread faster in 0 of 2 workloads, 2 threads in 2")
    assert "in total 2 threads (5.00 s against 2.00 s)" in idle
    assert busy.startswith("busy: 1 thread faster in 1 of 2 workloads, 2 threads in 1")
    assert "in total 1 thread (3.00 s against 31.50 s)" in busy
    assert default.startswith("DEFAULT_INFERENCE_THREADS = ")


def test_maze_aux_head_reads_open_cells_only_and_agrees_with_evaluate(tmp_path):
    pytest.importorskip("torch")
    from hrm_agent.evaluate import evaluate
    from hrm_agent.reasoner import load_model
    from hrm_env.puzzles import maze
    from hrm_env.puzzles.tasks import get_task

    aux_head = _script("maze_aux_head")
    mazes = maze.generate(np.random.default_rng(3), "easy", 3)
    q = mazes.questions[0]
    truth = maze.shortest_path_cells(q)
    assert aux_head.head_exact(q, truth)
    assert aux_head.head_exact(q, truth | (q == maze.WALL))  # walls are not read
    one_open = int(np.flatnonzero(q == maze.OPEN)[0])
    flipped = truth.copy()
    flipped[one_open] = not flipped[one_open]
    assert not aux_head.head_exact(q, flipped)

    path = tmp_path / "mazes.csv"
    maze.write_csv(path, mazes)
    answer, head = aux_head.main([str(path)])
    assert answer.shape == head.shape == (3,)
    # The answer verdicts match the evaluator's, run after the same cycle limit.
    task = get_task("maze")
    model, _ = load_model("maze")
    result = evaluate(model, task, task.load(path))
    expected = maze.check_batch(mazes.questions, np.asarray(result.predictions))
    assert answer.tolist() == expected.tolist()


def test_maze_selectors_records_the_views_halts_and_reads_open_cells_only(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from hrm_agent.reasoner import load_model
    from hrm_agent.sampling import Diversity, run_trajectories
    from hrm_env.puzzles import maze
    from hrm_env.puzzles.tasks import get_task

    selectors = _script("maze_selectors")
    # Confidence reads open cells only: a wall's doubt is ignored, an open cell's is not.
    rows = torch.tensor([[maze.WALL, maze.OPEN, maze.START]])
    logits = torch.zeros(1, 3, 6)
    logits[0, 1, maze.PATH] = 10.0  # the open cell: sure
    logits[0, 2, maze.START] = 10.0
    least, log_prob = selectors.confidence(logits, rows)  # the wall: uniform, ignored
    assert least[0] > 0.99 and -0.01 < log_prob[0] <= 0
    logits[0, 1] = 0.0  # the open cell: uniform over 6 tokens
    least, log_prob = selectors.confidence(logits, rows)
    assert least[0] == pytest.approx(1 / 6) and log_prob[0] == pytest.approx(np.log(1 / 6))

    mazes = maze.generate(np.random.default_rng(5), "easy", 3)
    task = get_task("maze")
    model, _ = load_model("maze")
    trajectories, signals = selectors.run_views(model, task, mazes.questions, 8, 2)
    # The same trajectories as the sampling module's views, halt for halt.
    tokens = torch.from_numpy(mazes.questions.astype(np.int64))
    expected = run_trajectories(model, tokens, 8, Diversity(views=True), views=task.views)
    assert np.array_equal(trajectories.answers, expected.answers)
    assert np.array_equal(trajectories.cycles, expected.cycles)
    assert all(value.shape == (3, 8) for value in signals.values())
    assert ((signals["least_sure"] > 0) & (signals["least_sure"] <= 1)).all()
    assert (signals["log_prob"] <= 0).all()
    picks = selectors.signal_picks(trajectories, signals)
    best = signals["q_margin"][np.arange(3), picks["highest q_margin"]]
    assert np.array_equal(best, signals["q_margin"].max(axis=1))

    path = tmp_path / "mazes.csv"
    maze.write_csv(path, mazes)
    selectors.main([str(path), "--samples", "2"])
    table = capsys.readouterr().out
    assert "| rule `vote` |" in table and "pass@2" in table
