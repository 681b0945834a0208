"""Run several ``hrm train`` configurations at once on one device, for a fixed wall-clock budget.

Made for a short lease of a GPU: each run is one ``hrm train`` process (the small models of this
project leave a GPU mostly idle, so several processes share it well). A run's cosine schedule
has to end when the budget does, yet its speed on the device is unknown beforehand, so the
sweep works in two phases:

1. **Calibrate.** Every run starts with a very long ``--steps`` (its learning rate stays at
   the peak) and is stopped with SIGTERM after ``--calibrate`` seconds; the trainer saves its
   state. The rate of each run, sharing the device with the others, comes from its
   ``train.csv``.
2. **Train.** Every run resumes with ``--steps`` set so that it ends, at that rate, inside the
   budget (``--margin`` keeps room for the evaluations). A run still going at the deadline is
   stopped with SIGTERM and keeps its last state.

Everything is written under ``--root``; with ``--archive`` the runs are packed into one
``.tar.gz``, without TensorBoard files and trainer states (``*.trainer.pt``: the optimizer and
data state, several MB per run, which the device tool would not send back whole). The last lines printed are a table of each run's steps
and last held-out evaluation.

The runs are the ``SWEEPS`` below, chosen by name::

    python scripts/device_sweep.py --sweep cpu-equivalent --device cuda --budget 420 \\
        --root runs/sweep --archive "$OUT/runs.tar.gz"

Per-step arithmetic on the device is the CPU's when ``--compute-dtype float32`` is given and
the batch is the CPU recipe's, so a run's steps convert to CPU-minutes at the CPU's measured
seconds per step (``benchmarks/bench_train.py`` style): the README's tables do that conversion.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from hrm_env.fileio import atomic_path

MAZE_EVAL = ["--eval-difficulty", "easy,medium,hard", "--eval-size", "128"]
MIX_SUDOKU = ["--difficulty", "easy:0.1,medium:0.4,hard:0.5"]
MIX_MAZE = ["--difficulty", "easy:0.2,medium:0.4,hard:0.4", *MAZE_EVAL]
SUDOKU_CKPT = "hrm_agent/checkpoints/sudoku"
MAZE_CKPT = "hrm_agent/checkpoints/maze"

#: name -> {run name -> (task, hrm train arguments)}. Every run keeps the CPU recipe's batch.
SWEEPS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "cpu-equivalent": {
        # 9x9 Sudoku: continue the shipped model with a longer cycle limit, with and without
        # an EMA of the weights, and a wider model from scratch.
        "sudoku-c32": (
            "sudoku",
            ["--init-from", SUDOKU_CKPT, "--max-segments", "32", *MIX_SUDOKU, "--lr", "1e-3"],
        ),
        "sudoku-c32-ema": (
            "sudoku",
            ["--init-from", SUDOKU_CKPT, "--max-segments", "32", *MIX_SUDOKU, "--lr", "1e-3"]
            + ["--ema", "0.999"],
        ),
        "sudoku-c64": (
            "sudoku",
            ["--init-from", SUDOKU_CKPT, "--max-segments", "64", *MIX_SUDOKU, "--lr", "1e-3"],
        ),
        "sudoku-w48": ("sudoku", ["--hidden-size", "432"]),
        # Mazes: continue the shipped model on longer paths with more cycles (and with more
        # low-level steps per cycle), and two mixers with more reach per block from scratch.
        "maze-c32": (
            "maze",
            ["--init-from", MAZE_CKPT, "--max-segments", "32", *MIX_MAZE, "--lr", "1e-3"],
        ),
        "maze-c32-T5": (
            "maze",
            ["--init-from", MAZE_CKPT, "--max-segments", "32", "--l-cycles", "5", *MIX_MAZE]
            + ["--lr", "1e-3"],
        ),
        "maze-k5": ("maze", ["--conv-kernel", "5", "--max-segments", "32", *MIX_MAZE]),
        "maze-d12": ("maze", ["--conv-dilations", "1,2", "--max-segments", "32", *MIX_MAZE]),
    },
    # Round 2 (a second, shorter lease): the best run of each task in round 1, continued with
    # a fresh, lower cosine schedule. Its inputs are round 1's checkpoints, fetched back from
    # the device and carried to it again.
    "continue": {
        "sudoku-c64-r2": (
            "sudoku",
            ["--init-from", "runs/gpu1/sweep/sudoku-c64/model", *MIX_SUDOKU, "--lr", "5e-4"]
            + ["--warmup", "50"],
        ),
        "maze-c32-r2": (
            "maze",
            ["--init-from", "runs/gpu1/sweep/maze-c32/model", *MIX_MAZE, "--lr", "5e-4"]
            + ["--warmup", "50"],
        ),
    },
    # A few seconds of each kind of run, to check the sweep itself on a CPU.
    "smoke": {
        "sudoku": ("sudoku-mini", ["--preset", "tiny", "--hidden-size", "32"]),
        "maze": ("maze", ["--hidden-size", "16", "--max-segments", "2", "--batch-size", "2"]),
    },
}


def _command(task: str, args: list[str], out_dir: Path, device: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hrm_agent.cli",
        "train",
        task,
        *args,
        "--out-dir",
        str(out_dir),
        "--device",
        device,
        "--threads",
        "1",
        "--no-progress",
        "--log-every",
        "10",
        *extra,
    ]


def _launch(
    runs: dict[str, tuple[str, list[str]]], root: Path, device: str, extra: dict[str, list[str]]
) -> dict[str, subprocess.Popen]:
    procs = {}
    for name, (task, args) in runs.items():
        out_dir = root / name
        out_dir.mkdir(parents=True, exist_ok=True)
        log = open(root / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        procs[name] = subprocess.Popen(
            _command(task, args, out_dir, device, extra[name]),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return procs


def _stop(procs: dict[str, subprocess.Popen], grace: float) -> None:
    """SIGTERM every run still going (the trainer saves and exits), then wait; kill stragglers."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until(procs: dict[str, subprocess.Popen], deadline: float) -> None:
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(1.0)


def _archived(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """What the archive keeps: weights, JSON, CSVs and logs; no TensorBoard or trainer state."""
    if "/tb" in info.name or info.name.endswith(".trainer.pt"):
        return None
    return info


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rate(out_dir: Path, batch: int) -> tuple[int, float]:
    """(last logged step, steps per second over the second half of the log)."""
    rows = _rows(out_dir / "train.csv")
    if not rows:
        return 0, 0.0
    late = rows[len(rows) // 2 :]
    speed = statistics.median(float(r["samples_per_s"]) for r in late)
    return int(rows[-1]["step"]), speed / batch


def _batch(args: list[str], task: str) -> int:
    if "--batch-size" in args:
        return int(args[args.index("--batch-size") + 1])
    from hrm_agent.recipes import recipe_for

    return int(recipe_for(task).train.get("batch_size", 64))


def _summary(root: Path, runs: dict[str, tuple[str, list[str]]]) -> list[str]:
    lines = []
    for name in runs:
        train = _rows(root / name / "train.csv")
        evals = _rows(root / name / "eval.csv")
        step = train[-1]["step"] if train else "-"
        last = {}
        for row in evals:
            last[row["tier"]] = row
        tiers = " ".join(
            f"{t}@{r['step']}={float(r['q_exact_accuracy']):.3f}" for t, r in last.items()
        )
        lines.append(f"{name:16s} step {step:>6s}  {tiers}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", choices=sorted(SWEEPS), default="cpu-equivalent")
    parser.add_argument("--only", default=None, help="comma-separated run names to keep")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for both phases")
    parser.add_argument("--calibrate", type=float, default=75.0, help="seconds of phase 1")
    parser.add_argument("--margin", type=float, default=0.85, help="share of the time to plan")
    parser.add_argument("--evals", type=int, default=5, help="evaluations per run in phase 2")
    parser.add_argument("--root", default="runs/sweep")
    parser.add_argument("--archive", default=None, help="write the runs to this .tar.gz")
    parser.add_argument(
        "--compute-dtype", default="float32", help="passed to every run (float32: CPU arithmetic)"
    )
    args = parser.parse_args(argv)
    runs = dict(SWEEPS[args.sweep])
    if args.only:
        keep = args.only.split(",")
        unknown = sorted(set(keep) - set(runs))
        if unknown:
            parser.error(f"unknown runs {unknown}; this sweep has {sorted(runs)}")
        runs = {k: v for k, v in runs.items() if k in keep}
    root = Path(args.root)
    start = time.monotonic()
    deadline = start + args.budget
    dtype = ["--compute-dtype", args.compute_dtype]

    # Phase 1: calibrate at the peak learning rate.
    procs = _launch(
        runs,
        root,
        args.device,
        {n: [*dtype, "--steps", "1000000", "--checkpoint-every", "1000000"] for n in runs},
    )
    _wait_until(procs, start + args.calibrate)
    _stop(procs, grace=60.0)
    plans: dict[str, list[str]] = {}
    remaining = deadline - time.monotonic()
    for name, (task, run_args) in runs.items():
        step, rate = _rate(root / name, _batch(run_args, task))
        if rate <= 0 or not (root / name / "model.trainer.pt").exists():
            print(f"{name}: no rate measured; left out. Its log ends:", flush=True)
            log = (root / f"{name}.log").read_text(errors="replace").splitlines()
            print("\n".join(log[-15:]), flush=True)
            continue
        steps = step + int(rate * remaining * args.margin)
        every = max(10, steps // args.evals)
        print(f"{name}: {rate:.2f} steps/s at step {step}; planned {steps} steps", flush=True)
        plans[name] = [
            *dtype,
            "--resume",
            "--steps",
            str(steps),
            "--eval-every",
            str(every),
            "--checkpoint-every",
            str(max(10, steps // 20)),
        ]

    # Phase 2: train to the planned step counts.
    if plans:
        kept = {n: runs[n] for n in plans}
        procs = _launch(kept, root, args.device, plans)
        _wait_until(procs, deadline)
        _stop(procs, grace=45.0)
        for name, proc in procs.items():
            print(f"{name}: exit {proc.returncode}", flush=True)
    if args.archive:
        with atomic_path(args.archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
            tar.add(root, arcname=root.name, filter=_archived)
    for line in _summary(root, runs):
        print(line, flush=True)
    print(f"sweep done in {time.monotonic() - start:.0f} s", flush=True)
    return 0 if plans else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
