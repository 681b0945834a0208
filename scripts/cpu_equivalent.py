"""Count a checkpoint's accelerator runs in this CPU's minutes.

A run on a GPU with ``--compute-dtype float32`` and the CPU recipe's batch does the same
arithmetic, step for step, as that run on the CPU (``scripts/device_sweep.py``); only faster. So
its cost on the CPU is its steps times the CPU's seconds per step for that configuration,
measured on the CPU. This script writes that figure into every accelerator run of a checkpoint's
lineage that lacks it (``cpu_seconds_per_step``, ``cpu_minutes_equivalent``,
``cpu_rate_source``) and recomputes the totals (``total_cpu_minutes`` then counts them). Only
the JSON is rewritten; the weights are untouched.

The rate comes from a CPU run of the same model and batch: its ``train.csv`` (the median of
``samples_per_s`` over its rows, divided by its batch size), or is given directly::

    python scripts/cpu_equivalent.py hrm_agent/checkpoints/sudoku --rate-from runs/sudoku-c3
    python scripts/cpu_equivalent.py hrm_agent/checkpoints/maze --seconds-per-step 0.52 \\
        --source "runs/maze-m4 (1 thread, the other core busy)"
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from hrm_agent.train import lineage_totals, ran_on_cpu
from hrm_env.fileio import write_text


def rate_from_run(run_dir: Path) -> float:
    """Seconds per step of a finished or running CPU run, from its train.csv and model.json."""
    with open(run_dir / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{run_dir / 'train.csv'} has no rows yet")
    meta = json.loads((run_dir / "model.json").read_text())["meta"]
    device = str(meta.get("device", "cpu"))
    if not device.startswith("cpu"):
        raise ValueError(f"{run_dir} ran on {device}, not on the CPU")
    batch = int(meta["train_config"]["batch_size"])
    speed = statistics.median(float(r["samples_per_s"]) for r in rows)
    return batch / speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stem", help="checkpoint stem (STEM.json is rewritten)")
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--rate-from", type=Path, help="a CPU run folder of the same config")
    rate.add_argument("--seconds-per-step", type=float, help="the CPU's seconds per step")
    parser.add_argument("--source", default=None, help="where the rate was measured")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)

    if args.rate_from is not None:
        seconds = rate_from_run(args.rate_from)
        source = args.source or f"{args.rate_from}/train.csv"
    else:
        if args.seconds_per_step <= 0:
            parser.error("--seconds-per-step must be positive")
        seconds = args.seconds_per_step
        source = args.source or "given"
    path = Path(f"{args.stem}.json")
    document = json.loads(path.read_text())
    meta = document.get("meta") or {}
    lineage = meta.get("lineage")
    if not lineage:
        print(f"{path} has no lineage", file=sys.stderr)
        return 1
    changed = 0
    for run in lineage:
        if ran_on_cpu(run) or run.get("cpu_minutes_equivalent") is not None:
            continue
        run["cpu_seconds_per_step"] = round(seconds, 4)
        run["cpu_minutes_equivalent"] = round(int(run.get("steps") or 0) * seconds / 60, 3)
        run["cpu_rate_source"] = source
        changed += 1
        print(
            f"{run['run']}: {run['steps']} steps x {seconds:.3f} s = "
            f"{run['cpu_minutes_equivalent']:.1f} CPU-minutes"
        )
    meta.update(lineage_totals(lineage))
    print(json.dumps({k: v for k, v in meta.items() if k.startswith("total_")}))
    if changed and not args.dry_run:
        write_text(path, json.dumps(document, indent=2) + "\n")  # never a torn checkpoint JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
