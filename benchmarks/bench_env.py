"""Environment throughput: how close the envs come to the bare model's speed.

For each model (the ``tiny`` preset with random weights, and the shipped checkpoint when one
exists), each device (CPU; CUDA when available) and each batch size N, it measures

- ``bare``: the reasoner alone, ``reasoner.cycle`` on N puzzles: puzzle-cycles per second,
  the limit any environment can reach;
- ``batched``: ``ReasoningVectorEnv`` with N sub-envs (one reasoner call per step);
- ``sync``: Gymnasium's ``SyncVectorEnv`` of N single ``ReasoningEnv`` (N calls per step);
- ``single``: one ``ReasoningEnv`` (N = 1 rows only),

all in sub-environment steps per second, and prints the ratios batched / bare and
batched / sync. Targets: batched >= 90% of bare at every N, and >= 10x sync at N = 64 with
``tiny``. The policy thinks to the cycle limit (action 0 always; the env halts by itself), so
an episode is ``max_cycles`` cycles and puzzles restart all the time, as in training
(``--policy random`` halts with probability 1/4 per step instead).

Usage::

    python benchmarks/bench_env.py                    # sudoku, N = 1 16 64 256, CPU (+ CUDA)
    python benchmarks/bench_env.py --threads 1 --tasks sudoku maze --sizes 1 64
    hrm bench env -- --no-cuda

Shapes: N sub-environments (batch), S cells.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import hrm_env  # noqa: F401  (registers the env ids)
from hrm_agent.config import HRMConfig
from hrm_agent.model import HRM
from hrm_agent.reasoner import TorchReasoner, load_pretrained
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.envs.vector import ReasoningVectorEnv
from hrm_env.puzzles.tasks import get_task


def rate(run: Callable[[], int], min_seconds: float, min_calls: int, warmup: int) -> float:
    """Items per second of ``run`` (which returns how many items one call did)."""
    for _ in range(warmup):
        run()
    items, calls = 0, 0
    start = time.perf_counter()
    while True:
        items += run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= min_calls:
            return items / elapsed


def policy(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "continue":
        return np.zeros(n, dtype=np.int64)
    return (rng.random(n) < 0.25).astype(np.int64)


def bench_bare(reasoner: Any, task: str, n: int, args: argparse.Namespace) -> float:
    batch = get_task(task).sample(np.random.default_rng(0), n)
    state = reasoner.reset(batch.inputs)
    holder = [state]

    def run() -> int:
        holder[0], _ = reasoner.cycle(holder[0])
        return n

    return rate(run, args.seconds, args.min_calls, args.warmup)


def bench_batched(reasoner: Any, task: str, n: int, args: argparse.Namespace) -> float:
    envs = ReasoningVectorEnv(n, task, reasoner=reasoner, max_cycles=args.max_cycles)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)

    def run() -> int:
        envs.step(policy(args.policy, n, rng))
        return n

    result = rate(run, args.seconds, args.min_calls, args.warmup)
    envs.close()
    return result


def bench_sync(reasoner: Any, task: str, n: int, args: argparse.Namespace) -> float:
    envs = gym.vector.SyncVectorEnv(
        [lambda: ReasoningEnv(task, reasoner=reasoner, max_cycles=args.max_cycles)] * n
    )
    envs.reset(seed=0)
    rng = np.random.default_rng(0)

    def run() -> int:
        envs.step(policy(args.policy, n, rng))
        return n

    result = rate(run, args.seconds, args.min_calls, args.warmup)
    envs.close()
    return result


def bench_single(reasoner: Any, task: str, args: argparse.Namespace) -> float:
    env = ReasoningEnv(task, reasoner=reasoner, max_cycles=args.max_cycles)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def run() -> int:
        _, _, terminated, truncated, _ = env.step(int(policy(args.policy, 1, rng)[0]))
        if terminated or truncated:
            env.reset()
        return 1

    return rate(run, args.seconds, args.min_calls, args.warmup)


def models(task: str, device: str, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(name, reasoner) pairs: the tiny preset, and the shipped checkpoint if there is one."""
    spec = get_task(task)
    config = HRMConfig.preset("tiny", seq_len=spec.seq_len, vocab_size=spec.vocab_size)
    tiny = HRM(config, generator=torch.Generator().manual_seed(0))
    out: list[tuple[str, Any]] = [("tiny", TorchReasoner(tiny, task, device=device))]
    try:
        shipped = load_pretrained(task, device=device, checkpoint=args.checkpoint)
        out.append(("shipped" if args.checkpoint is None else "checkpoint", shipped))
    except FileNotFoundError as err:
        print(f"[{task}] no shipped model measured: {err}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["sudoku"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 64, 256])
    parser.add_argument("--policy", choices=["continue", "random"], default="continue")
    parser.add_argument("--max-cycles", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.0, help="min timed seconds per cell")
    parser.add_argument("--min-calls", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument("--no-sync", action="store_true", help="skip SyncVectorEnv (slow)")
    parser.add_argument("--checkpoint", default=None, help="measure this checkpoint too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, policy "
        f"{args.policy!r}, max_cycles {args.max_cycles}; rates in sub-env steps (or "
        f"puzzle-cycles) per second"
    )
    header = (
        f"{'task':<7} {'model':<8} {'dev':<4} {'N':>4} {'bare':>10} {'batched':>10} "
        f"{'b/bare':>7} {'sync':>9} {'b/sync':>7} {'single':>8}"
    )
    print(header)
    print("-" * len(header))
    checks: list[str] = []
    for task in args.tasks:
        for device in devices:
            for name, reasoner in models(task, device, args):
                for n in args.sizes:
                    bare = bench_bare(reasoner, task, n, args)
                    batched = bench_batched(reasoner, task, n, args)
                    sync = None if args.no_sync else bench_sync(reasoner, task, n, args)
                    single = bench_single(reasoner, task, args) if n == 1 else None
                    print(
                        f"{task:<7} {name:<8} {device:<4} {n:>4} {bare:>10.0f} {batched:>10.0f} "
                        f"{batched / bare:>7.1%} "
                        + (
                            f"{sync:>9.0f} {batched / sync:>6.1f}x "
                            if sync
                            else f"{'-':>9} {'-':>7} "
                        )
                        + (f"{single:>8.0f}" if single else f"{'-':>8}"),
                        flush=True,
                    )
                    ok = batched >= 0.9 * bare
                    checks.append(
                        f"{'PASS' if ok else 'FAIL'}  batched >= 90% of bare: {task} {name} "
                        f"{device} N={n} ({batched / bare:.1%})"
                    )
                    if name == "tiny" and n == 64 and sync:
                        ok = batched >= 10 * sync
                        checks.append(
                            f"{'PASS' if ok else 'FAIL'}  batched >= 10x sync: {task} tiny "
                            f"{device} N=64 ({batched / sync:.1f}x)"
                        )
    print()
    print("\n".join(checks))


if __name__ == "__main__":
    main()
