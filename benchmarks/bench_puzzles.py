"""Puzzle-domain throughput, ours next to a public alternative, in one run.

Measures

- the Sudoku solver on the bundled test bank (the ~1,500 hardest puzzles of the public
  collections), on one core, each puzzle solved *and* proved unique;
- the Sudoku generator, puzzles per second for each tier (``easy``, ``medium``, ``hard``,
  ``extreme``), with every core of the machine (one process per core);
- hard-maze generation (``hrm_env.puzzles.maze.generate(rng, "hard", n)``), every core;

and the same figures for py-sudoku (a pure-Python generator and backtracking solver), run by the
Python of its own virtualenv (``bash benchmarks/setup_alternatives.sh`` creates
``.bench-venv``), so it never becomes a project dependency. py-sudoku has no rating: its
"difficulty" is the fraction of blanks, so each tier is compared with py-sudoku at a blank
fraction (``ALT_BLANKS``), retried until the puzzle is unique (its own multiple-solution
check); it never reaches as few givens as ours. Its solver does not prove uniqueness, so the
solver ratio is in its favour. py-sudoku has no maze generator.

Targets (issue 2): solver >= 2,000 hardest puzzles/s on one core; ``extreme`` Sudoku and
``hard`` maze generation >= 200/s on the 2-core machine. The machine is shared, so the load
average is printed, and the solver's rate is also given per CPU-second of its process.

Usage::

    bash benchmarks/setup_alternatives.sh     # once
    python benchmarks/bench_puzzles.py [--seconds 8] [--workers 2]
    hrm bench puzzles -- --no-alt
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hrm_env.puzzles import sudoku

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ALT_PYTHON = REPO / ".bench-venv" / "bin" / "python"
#: py-sudoku's blank fraction standing in for each of our tiers (it has no rating).
ALT_BLANKS = {"easy": 0.45, "medium": 0.5, "hard": 0.55, "extreme": 0.6}
#: Puzzles per generator call: small enough to stop close to the deadline.
CHUNK = {"easy": 32, "medium": 32, "hard": 8, "extreme": 64, "maze": 8}


# ---------------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------------


def _warm_up() -> None:
    """Load the compiled kernels and the train bank before any clock starts."""
    rng = np.random.default_rng(0)
    for tier in sudoku.TIERS:
        sudoku.generate(rng, tier, 1)
    try:
        from hrm_env.puzzles import maze

        maze.generate(rng, "hard", 1)
    except (ImportError, AttributeError):
        pass


def _generate_for(kind: str, seconds: float, seed: int) -> tuple[int, float, int]:
    """Generate chunks until ``seconds`` pass; returns (puzzles, CPU seconds, total givens)."""
    rng = np.random.default_rng(seed)
    count = givens = 0
    start = time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - start < seconds:
        if kind == "maze":
            from hrm_env.puzzles import maze

            batch = maze.generate(rng, "hard", CHUNK[kind])
        else:
            batch = sudoku.generate(rng, kind, CHUNK[kind])
            givens += int(np.count_nonzero(batch.questions))
        count += len(batch.questions)
    return count, time.process_time() - cpu, givens


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork keeps this script's functions importable in the workers (also under `hrm bench`).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_warm_up)


def ours_generate(pool: ProcessPoolExecutor, kind: str, workers: int, seconds: float) -> dict:
    start = time.perf_counter()
    results = list(pool.map(_generate_for, [kind] * workers, [seconds] * workers, range(workers)))
    wall = time.perf_counter() - start
    count = sum(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    return {
        "rate": count / wall,
        # What the same processes would make with a core each: the machine is shared.
        "cpu_rate": count / cpu * workers,
        "n": count,
        "givens": sum(r[2] for r in results) / max(count, 1),
    }


def ours_solve(seconds: float) -> dict:
    bank = sudoku.load_bank("test")
    sudoku.solve_batch(bank.questions[:4])  # compile / load the kernel
    count, wall, cpu = 0, 0.0, 0.0
    while wall < seconds:
        w0, c0 = time.perf_counter(), time.process_time()
        _, counts, _ = sudoku.solve_batch(bank.questions)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        assert (counts == 1).all()
        count += len(bank)
    return {"rate": count / wall, "cpu_rate": count / cpu, "n": count}


# ---------------------------------------------------------------------------------------------
# py-sudoku, in its own interpreter
# ---------------------------------------------------------------------------------------------

ALT_CODE = r"""
import json, multiprocessing, sys, time
from sudoku import Sudoku

args = json.loads(sys.argv[1])


def board(line):
    return [[int(line[r * 9 + c]) or None for c in range(9)] for r in range(9)]


def generate_for(job):
    blanks, seconds, seed = job
    count = tries = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        tries += 1
        puzzle = Sudoku(3, seed=seed * 1_000_003 + tries).difficulty(blanks)
        if puzzle.get_difficulty() != -3:  # -3: its multiple-solution check failed
            count += 1
    return count, tries


out = {}
lines = open(args["bank"]).read().split()
solved = 0
start = time.perf_counter()
while time.perf_counter() - start < args["seconds"] and solved < len(lines):
    Sudoku(3, 3, board=board(lines[solved])).solve(assert_solvable=True)
    solved += 1
out["solve"] = {"rate": solved / (time.perf_counter() - start), "n": solved}
ctx = multiprocessing.get_context("fork")
with ctx.Pool(args["workers"]) as pool:
    for tier, blanks in args["blanks"].items():
        start = time.perf_counter()
        jobs = [(blanks, args["seconds"], seed) for seed in range(args["workers"])]
        results = pool.map(generate_for, jobs)
        wall = time.perf_counter() - start
        count = sum(r[0] for r in results)
        out[tier] = {"rate": count / wall, "n": count, "tries": sum(r[1] for r in results),
                     "givens": 81 - int(blanks * 81)}
print(json.dumps(out))
"""


def alternative(python: Path, seconds: float, workers: int) -> dict | str:
    """py-sudoku's figures, or why there are none."""
    if not python.exists():
        return f"not installed ({python} missing; run bash benchmarks/setup_alternatives.sh)"
    bank = sudoku.load_bank("test")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bank.txt"
        path.write_text("\n".join(sudoku.format(q, blank="0") for q in bank.questions))
        args = {"bank": str(path), "seconds": seconds, "workers": workers, "blanks": ALT_BLANKS}
        run = subprocess.run(
            [str(python), "-c", ALT_CODE, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=60 + 12 * seconds * (len(ALT_BLANKS) + 1),
        )
    if run.returncode != 0:
        return f"failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}"
    return json.loads(run.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Sudoku and maze throughput vs py-sudoku")
    parser.add_argument("--seconds", type=float, default=8.0, help="time budget per figure")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--alt-python", type=Path, default=DEFAULT_ALT_PYTHON)
    parser.add_argument("--no-alt", action="store_true", help="skip py-sudoku")
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"generators use {args.workers} processes, the solver one"
    )
    _warm_up()
    ours: dict[str, dict | str] = {"solve": ours_solve(args.seconds)}
    with _pool(args.workers) as pool:
        for tier in sudoku.TIERS:
            ours[tier] = ours_generate(pool, tier, args.workers, args.seconds)
        try:
            from hrm_env.puzzles import maze

            if not hasattr(maze, "generate"):
                raise AttributeError("maze.generate")
            ours["maze"] = ours_generate(pool, "maze", args.workers, args.seconds)
        except (ImportError, AttributeError) as err:
            ours["maze"] = f"maze generator not available yet ({err})"
    alt = (
        "skipped (--no-alt)"
        if args.no_alt
        else alternative(args.alt_python, args.seconds, args.workers)
    )

    rows = [
        ("solve", f"solve {len(sudoku.load_bank('test')):,} hardest (test bank), 1 core, /s"),
        *[(t, f"generate sudoku {t}, {args.workers} processes, /s") for t in sudoku.TIERS],
        ("maze", f"generate maze hard (path > 110), {args.workers} processes, /s"),
    ]
    print()
    print(
        f"{'figure':52s} {'ours':>8s} {'ours/CPU':>9s} {'py-sudoku':>10s} {'ours/alt':>9s}  notes"
    )
    print("-" * 130)
    for key, label in rows:
        mine = ours.get(key)
        theirs = alt.get(key) if isinstance(alt, dict) else None
        rate = mine["rate"] if isinstance(mine, dict) else None
        cpu_rate = mine["cpu_rate"] if isinstance(mine, dict) else None
        alt_rate = theirs["rate"] if isinstance(theirs, dict) else None
        ratio = f"{rate / alt_rate:,.0f}x" if rate and alt_rate else "-"
        notes = []
        if key == "solve" and isinstance(mine, dict):
            notes.append("ours proves uniqueness, alt only solves")
            if isinstance(theirs, dict):
                notes.append(f"alt solved {theirs['n']}")
        elif key == "maze":
            notes.append(mine if isinstance(mine, str) else "py-sudoku has no mazes")
        elif isinstance(mine, dict):
            notes.append(f"ours ~{mine['givens']:.1f} givens")
            if isinstance(theirs, dict):
                notes.append(
                    f"alt: {ALT_BLANKS[key]:.0%} blanks ({theirs['givens']} givens), "
                    f"{theirs['n']}/{theirs['tries']} unique"
                )
        print(
            f"{label:52s} {_fmt(rate):>8s} {_fmt(cpu_rate):>9s} {_fmt(alt_rate):>10s} {ratio:>9s}"
            f"  {'; '.join(notes)}"
        )
    if isinstance(alt, str):
        print(f"py-sudoku: {alt}")
    print(
        "ours = wall-clock rate; ours/CPU = per CPU-second of the solver process, or of each"
        " generator process times the processes: the rates with the cores to ourselves"
    )
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
