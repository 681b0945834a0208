"""``hrm data sudoku|sudoku-mini|maze --difficulty D -n N --out FILE.csv``."""

from __future__ import annotations

import argparse
import os
import sys
import time

from hrm_agent.cli import count_type, seed_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="sudoku, sudoku-mini or maze")
    parser.add_argument("--difficulty", default=None, help="tier (default: the task's default)")
    parser.add_argument("-n", type=int, default=1000, help="number of puzzles (default 1000)")
    parser.add_argument("--out", required=True, help="output CSV path")
    parser.add_argument("--seed", type=seed_type, default=0, help="root seed (default 0)")
    parser.add_argument(
        "--workers", type=count_type, default=None, help="processes (default: all cores)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (off anyway when not a TTY)"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hrm_env.fileio import check_writable
    from hrm_env.puzzles.datagen import generate_batch, write_puzzle_csv
    from hrm_env.puzzles.tasks import get_task

    # The arguments are checked before the progress bar opens: a bar drawn and then abandoned
    # would stand above the error line.
    task = get_task(args.task)
    difficulty = task.check_difficulty(args.difficulty)
    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    # Also before the work: a path that cannot be written is found now, not after it.
    check_writable(args.out)
    # As in hrm eval: a bar only for a person watching; a log file would get its redraws.
    show_progress = not args.no_progress and sys.stderr.isatty()
    start = time.perf_counter()
    with tqdm(
        total=args.n, unit="puzzle", disable=not show_progress, desc=f"{task.name} {difficulty}"
    ) as bar:
        batch = generate_batch(
            task.name,
            difficulty,
            args.n,
            seed=args.seed,
            workers=args.workers,
            on_progress=bar.update,
        )
    source = f"hrm-{task.name}-{difficulty}-seed{args.seed}"
    path = write_puzzle_csv(args.out, task.name, batch, source)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(batch)} {difficulty} {task.name} puzzles to {os.fspath(path)} "
        f"({len(batch) / seconds:.0f}/s, mean rating {batch.ratings.mean():.1f})"
    )
    return 0
