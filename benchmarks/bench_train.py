"""Training throughput of the HRM trainer per preset: puzzle-segments per second.

One training step runs one segment for every puzzle of the batch (forward, the no-grad
forward of the next segment for the Q target, backward, AdamW), so the throughput is
``batch * steps / seconds`` in puzzle-segments per second. Fresh puzzles for the halted rows
are generated on the fly; the ``data %`` column is the share of the time spent generating them.

Usage::

    python benchmarks/bench_train.py                       # CPU; and CUDA when available
    python benchmarks/bench_train.py --presets tiny small --task sudoku --steps 10
    python benchmarks/bench_train.py --device cuda --batch-size 256 --compile
    python benchmarks/bench_train.py --mixers --threads 1   # every mixer at the shipped size

Shapes: B batch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from hrm_agent.train import TrainConfig, Trainer


def measure(
    task: str,
    preset: str,
    device: str,
    batch_size: int,
    steps: int,
    warmup: int,
    compile_model: bool,
    overrides: dict,
) -> dict[str, float]:
    """Time ``steps`` training steps after ``warmup`` untimed ones."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            task=task,
            preset=preset,
            overrides=overrides,
            batch_size=batch_size,
            steps=warmup + steps,
            device=device,
            compile=compile_model,
            out_dir=out,
            progress=False,
        )
        trainer = Trainer(config)
        data_seconds = 0.0
        draw = trainer.source.draw

        def timed_draw(rng, n):
            nonlocal data_seconds
            start = time.perf_counter()
            result = draw(rng, n)
            data_seconds += time.perf_counter() - start
            return result

        trainer.source.draw = timed_draw
        for _ in range(warmup):
            trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        data_seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        trainer.close()
    return {
        "params": trainer.model.config.num_parameters,
        "step_ms": 1000 * seconds / steps,
        "throughput": batch_size * steps / seconds,
        "data_share": data_seconds / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sudoku", help="sudoku, sudoku-mini or maze")
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    parser.add_argument(
        "--device",
        nargs="+",
        default=None,
        help="devices to measure (default: cpu, and cuda when available)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="global batch (default: 16 on CPU, 256 on CUDA)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--h-cycles", type=int, default=None, help="override N")
    parser.add_argument(
        "--mixers",
        action="store_true",
        help="instead of presets: the task's recipe model (the shipped size) with each token "
        "mixer in turn",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    overrides = {} if args.h_cycles is None else {"h_cycles": args.h_cycles}

    print(f"task {args.task}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    header = (
        f"{'device':<8}{'model':<11}{'compile':>8}{'params':>11}{'batch':>7}"
        f"{'ms/step':>10}{'puzzle-seg/s':>14}{'data %':>8}"
    )
    print(header)
    print("-" * len(header))
    runs: list[tuple[str, str, dict]] = [(p, p, overrides) for p in args.presets]
    if args.mixers:
        from hrm_agent.config import MIXERS
        from hrm_agent.recipes import recipe_for

        recipe = recipe_for(args.task)
        runs = []
        for mixer in MIXERS:
            if mixer == "candidates" and not args.task.startswith("sudoku"):
                continue  # the candidate grid is Sudoku's
            runs.append((mixer, recipe.preset, {**recipe.overrides, **overrides, "mixer": mixer}))
    for device in devices:
        batch = args.batch_size or (256 if device.startswith("cuda") else 16)
        for label, preset, run_overrides in runs:
            for compile_model in [False, True] if args.compile else [False]:
                r = measure(
                    args.task,
                    preset,
                    device,
                    batch,
                    args.steps,
                    args.warmup,
                    compile_model,
                    run_overrides,
                )
                print(
                    f"{device:<8}{label:<11}{'yes' if compile_model else 'no':>8}"
                    f"{r['params']:>11,}{batch:>7}{r['step_ms']:>10.1f}"
                    f"{r['throughput']:>14.1f}{100 * r['data_share']:>8.1f}"
                )
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
