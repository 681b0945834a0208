"""Cost of one row (puzzle or trajectory) per cycle against the rows in a forward pass.

``hrm eval``, ``solve`` and the trainer's evaluations split the puzzles into passes of
``devices.default_batch_size`` rows (``CPU_ROWS_PER_PASS`` on a CPU). This times one cycle of
the shipped model at each batch size of ``--rows`` and prints the CPU time per row, and its
ratio to the default's, measured in the same run: a ratio above 1 means a pass that wide
costs more per row than the default (on one thread the activations of a wide batch outgrow
the cache).

Usage::

    python benchmarks/bench_batch.py                          # sudoku, 1 thread
    python benchmarks/bench_batch.py --task maze --rows 8,32,128,256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hrm_agent.devices import CPU_ROWS_PER_PASS
from hrm_agent.evaluate import iterate_cycles
from hrm_agent.reasoner import load_model
from hrm_env.puzzles.tasks import get_task


def per_row_ms(model, tokens: torch.Tensor, cycles: int) -> float:
    """CPU milliseconds per row per cycle of ``cycles`` cycles of ``tokens`` (after a warm-up)."""
    for _ in iterate_cycles(model, tokens[:1], 1):
        pass
    start = time.process_time()
    for _ in iterate_cycles(model, tokens, cycles):
        pass
    return (time.process_time() - start) * 1000 / (tokens.shape[0] * cycles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--rows", default="1,8,32,64,128,256,512", help="batch sizes to time")
    parser.add_argument("--cycles", type=int, default=4, help="cycles per timing")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = sorted({int(r) for r in args.rows.split(",")} | {CPU_ROWS_PER_PASS})

    model, _ = load_model(args.task, args.checkpoint, "cpu")
    segments = max(1, args.cycles // model.config.h_cycles)
    task = get_task(args.task)
    puzzles = task.sample(np.random.default_rng(0), max(sizes), "hard")
    tokens = torch.from_numpy(puzzles.inputs.astype(np.int64))
    times = {n: per_row_ms(model, tokens[:n], segments) for n in sizes}
    base = times[CPU_ROWS_PER_PASS]
    print(
        f"{args.task}, {segments * model.config.h_cycles} cycles, {args.threads} thread(s), CPU time"
    )
    print(f"{'rows':>6} {'ms/row/cycle':>13} {'/ default':>10}")
    for n in sizes:
        mark = "  (default)" if n == CPU_ROWS_PER_PASS else ""
        print(f"{n:>6} {times[n]:>13.2f} {times[n] / base:>10.2f}{mark}")


if __name__ == "__main__":
    main()
