"""Cost of K trajectories per puzzle: one batch of B x K rows against K separate runs.

``hrm_agent.sampling.run_trajectories`` runs a puzzle's K trajectories as K rows of one batch.
This times it (every trajectory runs to the limit, so the work is fixed) for K = 1 and each K
of ``--samples``, and, for comparison, K plain runs one after another (the Python loop over
samples that batching avoids). It prints the time per puzzle and the ratio to K times the
K = 1 time, measured in the same run: about 1 means K trajectories cost K times one (the work
grows K-fold and batching loses nothing), below 1 that the bigger batch runs more efficiently.

Usage::

    python benchmarks/bench_samples.py                       # shipped sudoku model, CPU
    python benchmarks/bench_samples.py --puzzles 16 --cycles 8 --samples 2,4,8,16 --threads 1
    python benchmarks/bench_samples.py --task maze --views --samples 8   # the maze's 8 views
    hrm bench samples -- --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hrm_agent.reasoner import load_model
from hrm_agent.sampling import Diversity, run_trajectories
from hrm_env.puzzles.tasks import get_task

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, repeats: int, clock=time.process_time) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--puzzles", type=int, default=8, help="puzzles per batch (B)")
    parser.add_argument("--cycles", type=int, default=8, help="cycles per trajectory")
    parser.add_argument("--samples", default="2,4,8,16", help="K values to time")
    parser.add_argument("--sigma", type=float, default=0.3, help="carry noise of the samples")
    parser.add_argument(
        "--views", action="store_true", help="the task's views instead of carry noise (maze)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU time (the work, steady on a shared machine; use wall "
        "on a GPU)",
    )
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)

    model, _ = load_model(args.task, args.checkpoint, args.device)
    segments = max(1, args.cycles // model.config.h_cycles)
    task = get_task(args.task)
    puzzles = task.test_set()[: args.puzzles]
    tokens = torch.from_numpy(puzzles.inputs.astype(np.int64)).to(model.device)
    noise = Diversity(views=True) if args.views else Diversity(carry_sigma=args.sigma)

    def batched(k: int) -> float:
        return timed(
            lambda: run_trajectories(
                model, tokens, k, noise, 0, segments, use_q=False, views=task.views
            ),
            args.repeats,
            clock,
        )

    def looped(k: int) -> float:
        def run() -> None:
            for seed in range(k):
                run_trajectories(
                    model, tokens, 1, noise, seed, segments, use_q=False, views=task.views
                )

        return timed(run, args.repeats, clock)

    base = batched(1)
    cycles = segments * model.config.h_cycles
    print(
        f"{args.task}, {args.puzzles} puzzles x {cycles} cycles per trajectory, "
        f"{args.device}, {args.threads} thread(s), {args.clock} time; K = 1: {1e3 * base / args.puzzles:.2f} ms/puzzle"
    )
    print(
        f"{'K':>4}{'batched ms/puzzle':>19}{'/ (K x K=1)':>13}{'loop ms/puzzle':>16}{'/ (K x K=1)':>13}"
    )
    for k in [int(v) for v in args.samples.split(",") if v.strip()]:
        b, loop = batched(k), looped(k)
        print(
            f"{k:>4}{1e3 * b / args.puzzles:>19.2f}{b / (k * base):>13.2f}"
            f"{1e3 * loop / args.puzzles:>16.2f}{loop / (k * base):>13.2f}"
        )


if __name__ == "__main__":
    main()
