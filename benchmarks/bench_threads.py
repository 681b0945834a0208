"""Inference time against torch's CPU threads, on an idle CPU and with one core kept busy.

For each shipped model (``sudoku``, ``maze``) it times three ways of running inference:

- ``env``: episodes of ``gym.make("HRM-Sudoku-v0")`` / ``"HRM-Maze-v0"`` halting by the
  model's own Q head (one puzzle, one cycle per step: latency-bound);
- ``eval``: ``hrm_agent.evaluate.evaluate`` on the task's test set, as ``hrm eval`` runs it
  (batched: throughput-bound);
- ``solve``: ``hrm_agent.solve`` called once per puzzle,

each with torch at 1 thread and at one thread per core, in two conditions: ``idle`` (nothing
else of ours running) and ``busy`` (this script starts a process that spins on one core for the
whole condition, standing in for a training or a browser, and stops it after). Every cell is
the best of ``--repeats`` runs, and each ratio is against the 1-thread time of the same
workload and condition, measured in the same run. The last lines say which setting was faster
in each condition and compare with ``DEFAULT_INFERENCE_THREADS``, the default of ``hrm eval``,
``solve``, the envs and the examples. "idle" means idle only if nothing else uses the
machine: run it on a quiet machine to choose that default.

Usage::

    python benchmarks/bench_threads.py                                   # both models
    python benchmarks/bench_threads.py --tasks sudoku --episodes 1 --eval-puzzles 16
    hrm bench threads -- --conditions busy

Shapes: B puzzles, S cells.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import torch

import hrm_env  # noqa: F401  (registers the env ids)
from hrm_agent.api import solve
from hrm_agent.cli import count_type
from hrm_agent.evaluate import evaluate
from hrm_agent.reasoner import load_pretrained
from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS, model_cycle_limit
from hrm_env.puzzles.tasks import get_task

ENV_IDS = {"sudoku": "HRM-Sudoku-v0", "maze": "HRM-Maze-v0"}
WORKLOADS = ("env", "eval", "solve")
# A busy core: a pure-Python loop, so it needs nothing installed and holds one core fully.
SPIN = "while True:\n    pass\n"


@contextmanager
def busy_core(core: int | None = None) -> Iterator[subprocess.Popen]:
    """Keep one core busy (a spinning child process) for the duration of the block.

    Args:
        core: the core to pin the spinner to where the platform allows; None lets the OS
            place it.
    """
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        if core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(spinner.pid, {core})
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


def best_time(run: Callable[[], Any], repeats: int) -> float:
    """The shortest of ``repeats`` wall-clock times of ``run()``, in seconds (the least
    disturbed run: noise on a shared machine only ever adds time)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def faster_setting(one: float, many: float) -> str:
    """``"1"`` or ``"all"``: which thread setting took less time."""
    return "1" if one <= many else "all"


def make_workloads(task: str, args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    """The three timed workloads for ``task``'s shipped model, sized by ``args``."""
    reasoner = load_pretrained(task)
    model = reasoner.model
    spec = get_task(task)
    test = spec.test_set()
    eval_set = test[: args.eval_puzzles]
    solve_set = test[args.eval_puzzles : args.eval_puzzles + args.solve_puzzles].inputs
    limit = args.max_cycles or model_cycle_limit(reasoner)
    # eval and solve stop at segment ends: the segments that cover the cycle limit.
    segments = -(-limit // model.config.h_cycles)
    # Injected, so no env reloads the model or sets threads behind the benchmark's back.
    env = gym.make(ENV_IDS[task], reasoner=reasoner, max_cycles=limit)

    def episodes() -> int:
        cycles = 0
        for e in range(args.episodes):
            obs, info = env.reset(seed=e)  # the same puzzles at every setting
            while True:
                q_halt, q_continue = obs["q"]
                obs, _, terminated, truncated, info = env.step(int(q_halt > q_continue))
                if terminated or truncated:
                    break
            cycles += info["cycles"]
        return cycles

    def batched() -> None:
        evaluate(model, spec, eval_set, max_segments=segments, batch_size=256)

    def one_by_one() -> None:
        for puzzle in solve_set:
            # threads=None: the setting the benchmark made.
            solve(puzzle, task=task, max_segments=segments, threads=None)

    return {"env": episodes, "eval": batched, "solve": one_by_one}


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (task, workload, condition): the time at 1 and at ``args.all`` threads."""
    settings = sorted({1, args.all})
    rows = []
    for task in args.tasks:
        workloads = make_workloads(task, args)
        for condition in args.conditions:
            spinner = busy_core(args.busy_core) if condition == "busy" else _nothing()
            with spinner:
                for name in WORKLOADS:
                    run = workloads[name]
                    seconds = {}
                    for threads in settings:
                        torch.set_num_threads(threads)
                        run()  # warm-up: first-call allocations and the thread pool's start
                        seconds[threads] = best_time(run, args.repeats)
                    rows.append(
                        {
                            "task": task,
                            "workload": name,
                            "condition": condition,
                            "one": seconds[1],
                            "all": seconds[args.all],
                        }
                    )
                    print(_row(rows[-1]), flush=True)
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _row(row: dict[str, Any]) -> str:
    ratio = row["all"] / row["one"] if row["one"] > 0 else float("nan")
    return (
        f"| {row['task']} | {row['workload']} | {row['condition']} | {row['one']:.3f} | "
        f"{row['all']:.3f} | {ratio:.2f} | {faster_setting(row['one'], row['all'])} |"
    )


def verdict(rows: list[dict[str, Any]], n: int) -> list[str]:
    """Per condition: how many workloads each setting won, and what that says of the default."""
    lines = []
    for condition in dict.fromkeys(r["condition"] for r in rows):
        mine = [r for r in rows if r["condition"] == condition]
        wins_one = sum(faster_setting(r["one"], r["all"]) == "1" for r in mine)
        # The summed time over all workloads: the setting a user running all of them wants.
        total_one, total_all = sum(r["one"] for r in mine), sum(r["all"] for r in mine)
        best = "1 thread" if total_one <= total_all else f"{n} threads"
        lines.append(
            f"{condition}: 1 thread faster in {wins_one} of {len(mine)} workloads, {n} threads "
            f"in {len(mine) - wins_one}; in total {best} ({total_one:.2f} s against "
            f"{total_all:.2f} s)"
        )
    default = DEFAULT_INFERENCE_THREADS or torch.get_num_threads()
    lines.append(
        f"DEFAULT_INFERENCE_THREADS = {DEFAULT_INFERENCE_THREADS} "
        f"({'1 thread' if default == 1 else f'{default} threads'}); choose it from the busy "
        "condition on a 2-core machine and the idle one on a quiet machine"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(ENV_IDS), choices=list(ENV_IDS))
    parser.add_argument(
        "--conditions", nargs="+", default=["idle", "busy"], choices=["idle", "busy"]
    )
    parser.add_argument("--episodes", type=count_type, default=5, help="env episodes per timing")
    parser.add_argument("--eval-puzzles", type=count_type, default=128, help="puzzles per eval")
    parser.add_argument(
        "--solve-puzzles", type=count_type, default=8, help="solve() calls per timing"
    )
    parser.add_argument(
        "--max-cycles",
        type=count_type,
        default=None,
        help="cycle limit of every workload (default: each model's own; lower for a quick run)",
    )
    parser.add_argument(
        "--repeats", type=count_type, default=3, help="timings per cell (best kept)"
    )
    parser.add_argument(
        "--all",
        type=count_type,
        default=os.cpu_count() or 1,
        help="the many-thread setting (default: one per core, os.cpu_count())",
    )
    parser.add_argument(
        "--busy-core", type=int, default=0, help="core the busy condition's spinner holds"
    )
    args = parser.parse_args(argv)
    limit = "each model's own" if args.max_cycles is None else args.max_cycles
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores; {args.episodes} env episodes, "
        f"{args.eval_puzzles} eval puzzles, {args.solve_puzzles} solve() calls, best of "
        f"{args.repeats}; cycle limit {limit}; seconds per timing"
    )
    print(
        f"| model | workload | condition | 1 thread s | {args.all} threads s | "
        f"{args.all} / 1 | faster |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    rows = measure(args)
    print()
    for line in verdict(rows, args.all):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
